"""An owner sees, rotates and revokes the workspace's admin and member tokens, and a revoked one stops working
at once on every service; a console session ends on sign-out even where its cookie was copied."""

from typing import Any

import httpx
import pytest

from tests.conftest import RunningStack


@pytest.fixture
def workspace(stack: RunningStack) -> dict[str, Any]:
    return stack.create_workspace("team")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _issue(stack: RunningStack, ws: dict[str, Any], role: str, name: str) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/admin-tokens",
        json={"role": role, "name": name},
        headers=_bearer(ws["adminToken"]),
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    issued: dict[str, Any] = answer.json()
    return issued


def _reads(stack: RunningStack, ws: dict[str, Any], token: str) -> int:
    """The status of a read on two services (the same on both)."""
    statuses = {
        httpx.get(f"{stack.url(service)}/v1/workspaces/{ws['workspaceId']}/{path}", headers=_bearer(token)).status_code
        for service, path in [("policy-engine", "budgets"), ("reporting", "usage")]
    }
    assert len(statuses) == 1, statuses
    return statuses.pop()


def test_the_owner_lists_the_tokens_without_their_secrets(stack: RunningStack, workspace: dict[str, Any]) -> None:
    member = _issue(stack, workspace, "member", "analyst")
    answer = httpx.get(
        f"{stack.url('ingest-gateway')}/v1/workspaces/{workspace['workspaceId']}/admin-tokens",
        headers=_bearer(workspace["adminToken"]),
    )
    assert answer.status_code == 200, answer.text
    tokens = {t["adminTokenId"]: t for t in answer.json()["adminTokens"]}
    assert tokens[member["adminTokenId"]]["role"] == "member"
    assert tokens[member["adminTokenId"]]["name"] == "analyst"
    assert sorted(t["role"] for t in tokens.values()) == ["member", "owner"]
    assert member["adminToken"] not in answer.text
    assert member["adminToken"].rsplit("_", 1)[1] not in answer.text


def test_a_revoked_member_token_is_refused_at_once(stack: RunningStack, workspace: dict[str, Any]) -> None:
    member = _issue(stack, workspace, "member", "leaver")
    assert _reads(stack, workspace, member["adminToken"]) == 200
    revoked = httpx.delete(
        f"{stack.url('ingest-gateway')}/v1/workspaces/{workspace['workspaceId']}/admin-tokens/{member['adminTokenId']}",
        headers=_bearer(workspace["adminToken"]),
    )
    assert revoked.status_code == 204, revoked.text
    assert _reads(stack, workspace, member["adminToken"]) == 401
    assert _reads(stack, workspace, workspace["adminToken"]) == 200


def test_only_the_owner_manages_tokens_and_the_owner_token_is_rotated_not_revoked(
    stack: RunningStack, workspace: dict[str, Any]
) -> None:
    base = f"{stack.url('ingest-gateway')}/v1/workspaces/{workspace['workspaceId']}/admin-tokens"
    admin = _issue(stack, workspace, "admin", "ops")
    member = _issue(stack, workspace, "member", "analyst")
    assert httpx.get(base, headers=_bearer(admin["adminToken"])).status_code == 403
    assert httpx.delete(f"{base}/{member['adminTokenId']}", headers=_bearer(admin["adminToken"])).status_code == 403
    assert _reads(stack, workspace, member["adminToken"]) == 200

    owner_id = workspace["adminToken"].rsplit("_", 2)[1]
    refused = httpx.delete(f"{base}/{owner_id}", headers=_bearer(workspace["adminToken"]))
    assert refused.status_code == 409, refused.text

    rotated = httpx.post(f"{base}/{owner_id}/rotate", headers=_bearer(workspace["adminToken"]))
    assert rotated.status_code == 201, rotated.text
    assert (rotated.json()["role"], rotated.json()["rotatedFrom"]) == ("owner", owner_id)
    assert _reads(stack, workspace, workspace["adminToken"]) == 401
    assert _reads(stack, workspace, rotated.json()["adminToken"]) == 200


def test_another_workspaces_token_is_not_found(stack: RunningStack, workspace: dict[str, Any]) -> None:
    other = stack.create_workspace("team")
    member = _issue(stack, other, "member", "theirs")
    answer = httpx.delete(
        f"{stack.url('ingest-gateway')}/v1/workspaces/{workspace['workspaceId']}/admin-tokens/{member['adminTokenId']}",
        headers=_bearer(workspace["adminToken"]),
    )
    assert answer.status_code == 404
    assert _reads(stack, other, member["adminToken"]) == 200


class TestConsoleSession:
    def _sign_in(self, stack: RunningStack, token: str) -> httpx.Cookies:
        console = stack.url("console")
        answer = httpx.post(f"{console}/api/session", json={"token": token}, headers={"Origin": console})
        assert answer.status_code == 200, answer.text
        return answer.cookies

    def test_sign_out_ends_the_session_for_a_copied_cookie_too(
        self, stack: RunningStack, workspace: dict[str, Any]
    ) -> None:
        console = stack.url("console")
        usage = f"{console}/api/reporting/v1/workspaces/{workspace['workspaceId']}/usage"
        cookies = self._sign_in(stack, workspace["adminToken"])
        copied = httpx.Cookies(cookies)
        assert httpx.get(usage, cookies=cookies).status_code == 200
        assert httpx.delete(f"{console}/api/session", cookies=cookies, headers={"Origin": console}).status_code == 204
        assert httpx.get(usage, cookies=copied).status_code == 401
        assert httpx.get(f"{console}/api/session", cookies=copied).json() == {"signedIn": False}

    def test_the_cookie_is_not_the_bare_token_and_a_bare_token_is_no_session(
        self, stack: RunningStack, workspace: dict[str, Any]
    ) -> None:
        console = stack.url("console")
        usage = f"{console}/api/reporting/v1/workspaces/{workspace['workspaceId']}/usage"
        cookies = self._sign_in(stack, workspace["adminToken"])
        assert cookies["opsmeter_session"] != workspace["adminToken"]
        assert httpx.get(usage, cookies={"opsmeter_session": workspace["adminToken"]}).status_code == 401

    def test_a_revoked_token_ends_its_console_session(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        console = stack.url("console")
        member = _issue(stack, workspace, "member", "leaver")
        cookies = self._sign_in(stack, member["adminToken"])
        usage = f"{console}/api/reporting/v1/workspaces/{workspace['workspaceId']}/usage"
        assert httpx.get(usage, cookies=cookies).status_code == 200
        httpx.delete(
            f"{stack.url('ingest-gateway')}/v1/workspaces/{workspace['workspaceId']}/admin-tokens/{member['adminTokenId']}",
            headers=_bearer(workspace["adminToken"]),
        ).raise_for_status()
        assert httpx.get(usage, cookies=cookies).status_code == 401

    def test_a_cross_site_sign_out_is_refused(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        console = stack.url("console")
        cookies = self._sign_in(stack, workspace["adminToken"])
        forged = httpx.delete(f"{console}/api/session", cookies=cookies, headers={"Sec-Fetch-Site": "cross-site"})
        assert forged.status_code == 403
        usage = f"{console}/api/reporting/v1/workspaces/{workspace['workspaceId']}/usage"
        assert httpx.get(usage, cookies=cookies).status_code == 200
