"""Workspace prices (ADR 57) end to end: a negotiated or self-hosted model's price wins over the catalog from its
effective date; calls nobody priced are listed; events already stored keep their cost."""

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from typing import Any

import httpx
import pytest

from tests.conftest import RunningStack

MODEL = "acme-llama-70b"


def ingest(stack: RunningStack, key: str, **fields: Any) -> dict[str, Any]:
    body = {"externalRequestId": f"req_{uuid.uuid4().hex}", "provider": "acme", "model": MODEL, **fields}
    answer = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/ingest/llm-request",
        content=json.dumps(body).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    assert answer.status_code == 202, answer.text
    result: dict[str, Any] = answer.json()
    return result


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.1)


def admin(ws: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {ws['adminToken']}"}


def yesterday() -> datetime:
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=1), day_time(), tzinfo=UTC)


@pytest.fixture(scope="module")
def priced_workspace(stack: RunningStack) -> dict[str, Any]:
    """A workspace that sent acme-llama-70b calls yesterday (unpriced), then priced it $0.50/$1.00 per M from
    yesterday and sent more today."""
    ws = stack.create_workspace()
    at = (yesterday() + timedelta(hours=12)).isoformat()
    before = ingest(stack, ws["apiKey"], inputTokens=2_000_000, outputTokens=1_000_000, timestamp=at)
    put = httpx.put(
        f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/prices",
        json={
            "prices": [
                {
                    "model": MODEL,
                    "effectiveFrom": yesterday().date().isoformat(),
                    "inputUsdPerMtok": "0.50",
                    "outputUsdPerMtok": "1.00",
                }
            ],
            "reason": "self-hosted on our own GPUs",
        },
        headers=admin(ws),
    )
    assert put.status_code == 200, put.text
    today = ingest(stack, ws["apiKey"], inputTokens=1_000_000, outputTokens=1_000_000)
    return {**ws, "before": before, "put": put.json(), "today": today}


class TestWorkspacePrices:
    def test_the_price_is_kept_with_its_effective_date(
        self, stack: RunningStack, priced_workspace: dict[str, Any]
    ) -> None:
        ws = priced_workspace
        answer = httpx.get(f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/prices", headers=admin(ws))
        assert answer.json() == ws["put"]
        assert ws["put"]["version"] == 1
        assert ws["put"]["prices"] == [
            {
                "model": MODEL,
                "provider": None,
                "effectiveFrom": yesterday().isoformat().replace("+00:00", "Z"),
                "inputUsdPerMtok": "0.5",
                "outputUsdPerMtok": "1",
                "cachedInputUsdPerMtok": None,
                "cacheWriteInputUsdPerMtok": None,
                "reasoningUsdPerMtok": None,
            }
        ]

    def test_todays_calls_cost_by_it_and_earlier_ones_keep_their_cost(self, priced_workspace: dict[str, Any]) -> None:
        before, today = priced_workspace["before"], priced_workspace["today"]
        assert (before["priced"], before["costUsd"]) == (False, "0")
        assert (today["priced"], today["costUsd"], today["warnings"]) == (True, "1.5", [])

    def test_unpriced_models_are_listed_with_first_seen_requests_and_tokens(
        self, stack: RunningStack, priced_workspace: dict[str, Any]
    ) -> None:
        ws = priced_workspace
        url = f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/prices/unpriced"
        models = eventually(lambda: httpx.get(url, headers=admin(ws)).json()["models"])
        assert models == [
            {
                "model": MODEL,
                "provider": "acme",
                "firstSeen": (yesterday() + timedelta(hours=12)).isoformat().replace("+00:00", "Z"),
                "lastSeen": (yesterday() + timedelta(hours=12)).isoformat().replace("+00:00", "Z"),
                "requests": 1,
                "inputTokens": 2_000_000,
                "outputTokens": 1_000_000,
            }
        ]

    def test_only_the_owner_or_an_admin_sets_prices(
        self, stack: RunningStack, priced_workspace: dict[str, Any]
    ) -> None:
        ws = priced_workspace
        gateway = stack.url("ingest-gateway")
        member = httpx.post(
            f"{gateway}/v1/workspaces/{ws['workspaceId']}/admin-tokens", json={"role": "member"}, headers=admin(ws)
        ).json()["adminToken"]
        url = f"{gateway}/v1/workspaces/{ws['workspaceId']}/prices"
        body: dict[str, Any] = {"prices": []}
        assert httpx.put(url, json=body, headers={"Authorization": f"Bearer {member}"}).status_code == 403
        assert httpx.get(url, headers={"Authorization": f"Bearer {member}"}).status_code == 200

    def test_a_bad_price_names_the_field(self, stack: RunningStack, priced_workspace: dict[str, Any]) -> None:
        ws = priced_workspace
        url = f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/prices"
        row = {"model": "x", "effectiveFrom": "2026-12-01", "inputUsdPerMtok": "-1", "outputUsdPerMtok": "1"}
        answer = httpx.put(url, json={"prices": [row]}, headers=admin(ws))
        assert answer.status_code == 422
        assert "inputUsdPerMtok" in answer.text
