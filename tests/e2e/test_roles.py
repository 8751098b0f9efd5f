"""SPEC §6: settings and workspace changes need the owner or admin role. A member token reads, and every change it
tries is refused with 403 before anything happens, on every service."""

from typing import Any

import httpx
import pytest

from tests.conftest import RunningStack

WRITES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("policy-engine", "PUT", "/v1/workspaces/{ws}/budgets", {"dailyUsd": 10.0}),
    ("policy-engine", "PUT", "/v1/workspaces/{ws}/policy", {"enforcement": "hard_stop"}),
    ("policy-engine", "PUT", "/v1/workspaces/{ws}/rules", {"unitCostRules": []}),
    ("alerting", "PUT", "/v1/workspaces/{ws}/alerts/settings", {"cooldownSeconds": 60}),
    ("alerting", "POST", "/v1/workspaces/{ws}/alerts/test", None),
    ("alerting", "POST", "/v1/workspaces/{ws}/alerts/dead-letters/replay", None),
    ("ingest-gateway", "PUT", "/v1/workspaces/{ws}/prices", {"prices": []}),
    ("ingest-gateway", "PUT", "/v1/workspaces/{ws}/otel-attributes", {}),
    ("ingest-gateway", "POST", "/v1/workspaces/{ws}/api-keys", {"name": "x"}),
    ("ingest-gateway", "POST", "/v1/workspaces/{ws}/api-keys/{key}/rotate", None),
    ("ingest-gateway", "DELETE", "/v1/workspaces/{ws}/api-keys/{key}", None),
    ("ingest-gateway", "POST", "/v1/workspaces/{ws}/admin-tokens", {"role": "member"}),
    ("ingest-gateway", "DELETE", "/v1/ingest/demo-data?scope=workspace", None),
    ("ingest-gateway", "DELETE", "/v1/ingest/test-data?scope=workspace", None),
    ("reporting", "POST", "/v1/workspaces/{ws}/repricing", {"dryRun": True}),
    ("billing", "POST", "/v1/billing/subscription/change-plan", {"plan": "pro"}),
    # The portal cancels the subscription and swaps the card: a change, though it is a GET.
    ("billing", "GET", "/v1/billing/portal", None),
]


@pytest.fixture(scope="module")
def workspace(stack: RunningStack) -> dict[str, Any]:
    ws = stack.create_workspace("team")
    member = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/admin-tokens",
        json={"role": "member", "name": "analyst"},
        headers={"Authorization": f"Bearer {ws['adminToken']}"},
        timeout=30,
    )
    assert member.status_code == 201, member.text
    return {**ws, "memberToken": member.json()["adminToken"]}


@pytest.mark.parametrize(("service", "method", "path", "body"), WRITES, ids=[f"{w[1]} {w[2]}" for w in WRITES])
def test_a_member_is_refused_every_change(
    stack: RunningStack, workspace: dict[str, Any], service: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    url = stack.url(service) + path.format(ws=workspace["workspaceId"], key=workspace["apiKeyId"])
    headers = {"Authorization": f"Bearer {workspace['memberToken']}", "Idempotency-Key": "role-test"}
    answer = httpx.request(method, url, json=body, headers=headers, timeout=30)
    assert answer.status_code == 403, answer.text


def test_a_member_reads_what_it_may_not_change(stack: RunningStack, workspace: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {workspace['memberToken']}"}
    ws = workspace["workspaceId"]
    for service, path in [
        ("policy-engine", f"/v1/workspaces/{ws}/budgets"),
        ("alerting", f"/v1/workspaces/{ws}/alerts/settings"),
        ("ingest-gateway", f"/v1/workspaces/{ws}/api-keys"),
        ("reporting", f"/v1/workspaces/{ws}/usage"),
    ]:
        assert httpx.get(stack.url(service) + path, headers=headers, timeout=30).status_code == 200, path
    keys = httpx.get(stack.url("ingest-gateway") + f"/v1/workspaces/{ws}/api-keys", headers=headers, timeout=30)
    assert all(not k["revoked"] for k in keys.json()["apiKeys"]), "none of the refused changes took effect"
