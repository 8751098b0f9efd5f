"""Workspace prices (ADR 57) end to end: a negotiated or self-hosted model's price wins over the catalog from its
effective date; calls nobody priced are listed; events already stored keep their cost."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from typing import Any

import httpx
import pytest

from opsmeter_runtime.testing import eventually
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


def admin(ws: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {ws['adminToken']}"}


def millis(moment: datetime) -> datetime:
    """As ClickHouse keeps it (DateTime64(3))."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def yesterday() -> datetime:
    return datetime.combine(datetime.now(UTC).date() - timedelta(days=1), day_time(), tzinfo=UTC)


@pytest.fixture(scope="module")
def priced_workspace(stack: RunningStack) -> dict[str, Any]:
    """A workspace that sent acme-llama-70b calls yesterday and today (unpriced), then priced it $0.50/$1.00 per M
    from yesterday and sent one more today."""
    ws = stack.create_workspace()
    at = (yesterday() + timedelta(hours=12)).isoformat()
    before = ingest(stack, ws["apiKey"], inputTokens=2_000_000, outputTokens=1_000_000, timestamp=at)
    earlier_today = datetime.now(UTC) - timedelta(seconds=2)
    ingest(stack, ws["apiKey"], inputTokens=1_000_000, outputTokens=0, timestamp=earlier_today.isoformat())
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
    return {**ws, "before": before, "earlier_today": earlier_today, "put": put.json(), "today": today}


class TestWorkspacePrices:
    def test_the_price_is_kept_with_its_effective_date(
        self, stack: RunningStack, priced_workspace: dict[str, Any]
    ) -> None:
        ws = priced_workspace
        answer = httpx.get(f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/prices", headers=admin(ws))
        assert answer.json() == {k: v for k, v in ws["put"].items() if k != "repricingFrom"}
        assert ws["put"]["repricingFrom"] == yesterday().isoformat().replace("+00:00", "Z")  # re-pricing offered
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
        models = eventually(
            lambda: (m := httpx.get(url, headers=admin(ws)).json()["models"]) and m[0]["requests"] == 2 and m
        )
        assert models == [
            {
                "model": MODEL,
                "provider": "acme",
                "firstSeen": (yesterday() + timedelta(hours=12)).isoformat().replace("+00:00", "Z"),
                "lastSeen": millis(ws["earlier_today"]).isoformat().replace("+00:00", "Z"),
                "requests": 2,
                "inputTokens": 3_000_000,
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


def totals(stack: RunningStack, ws: dict[str, Any]) -> dict[str, int]:
    """The costs a re-pricing must move: /usage and the spike's current window over yesterday and today, and the
    policy engine's daily and monthly spend."""
    reporting, wsid = stack.url("reporting"), ws["workspaceId"]
    window = {"from": yesterday().isoformat(), "to": (yesterday() + timedelta(days=2)).isoformat()}
    usage = httpx.get(f"{reporting}/v1/workspaces/{wsid}/usage", params=window, headers=admin(ws)).json()
    spike = httpx.get(f"{reporting}/v1/workspaces/{wsid}/spike", params=window, headers=admin(ws)).json()
    series = httpx.get(
        f"{reporting}/v1/workspaces/{wsid}/usage/series", params={**window, "bucket": "day"}, headers=admin(ws)
    ).json()
    spend = httpx.get(f"{stack.url('policy-engine')}/v1/workspaces/{wsid}/spend", headers=admin(ws)).json()
    return {
        "usage": usage["totals"]["costMicroUsd"],
        "usage_requests": usage["totals"]["requests"],
        "spike": spike["current"]["costMicroUsd"],
        "series": series["totals"]["costMicroUsd"],
        "daily": spend["daily"]["currentSpendMicroUsd"],
        "monthly": spend["monthly"]["currentSpendMicroUsd"],
    }


class TestRepricing:
    def test_the_dry_run_diff_is_exactly_what_applying_moves(
        self, stack: RunningStack, priced_workspace: dict[str, Any]
    ) -> None:
        ws = priced_workspace
        url = f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/repricing"
        span = {"from": yesterday().isoformat(), "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
        before = eventually(lambda: (t := totals(stack, ws))["usage_requests"] == 3 and t["daily"] == 1_500_000 and t)
        assert (before["usage"], before["spike"], before["series"]) == (1_500_000,) * 3  # the unpriced calls cost 0

        dry = httpx.post(url, json={**span, "dryRun": True}, headers=admin(ws))
        assert dry.status_code == 200, dry.text
        # yesterday 2M in + 1M out -> $2.00; earlier today 1M in -> $0.50; today's call already at $1.50
        assert dry.json()["models"] == [
            {
                "model": MODEL,
                "provider": "acme",
                "requests": 3,
                "repriced": 2,
                "oldCostUsd": "1.5",
                "newCostUsd": "4",
                "computedDeltaUsd": "2.5",
                "deltaUsd": "2.5",
                "deltaMicroUsd": 2_500_000,
            }
        ]
        assert (dry.json()["repricingId"], dry.json()["correctedEvents"]) == (None, 0)
        assert totals(stack, ws) == before  # a dry run changes nothing

        refused = httpx.post(url, json={**span, "dryRun": False}, headers=admin(ws))
        assert refused.status_code == 422
        assert "reason" in refused.text
        applied = httpx.post(url, json={**span, "dryRun": False, "reason": "priced our own model"}, headers=admin(ws))
        assert applied.status_code == 200, applied.text
        assert (applied.json()["correctedEvents"], applied.json()["deltaMicroUsd"]) == (2, 2_500_000)
        assert applied.json()["models"] == dry.json()["models"]

        same_month = yesterday().month == datetime.now(UTC).month
        expected = {
            **before,
            "usage": before["usage"] + 2_500_000,
            "spike": before["spike"] + 2_500_000,
            "series": before["series"] + 2_500_000,
            "daily": before["daily"] + 500_000,  # only the call of earlier today is in today's window
            "monthly": before["monthly"] + (2_500_000 if same_month else 500_000),
        }
        assert eventually(lambda: (t := totals(stack, ws)) == expected and t) == expected

        again = httpx.post(url, json={**span, "dryRun": True}, headers=admin(ws))
        assert again.json()["deltaMicroUsd"] == 0  # nothing left to re-price
        history = httpx.get(url, headers=admin(ws)).json()["repricings"]
        assert [(r["repricingId"], r["reason"], r["correctedEvents"], r["deltaUsd"]) for r in history] == [
            (applied.json()["repricingId"], "priced our own model", 2, "2.5")
        ]
        assert history[0]["requestedByRole"] == "owner"
        unpriced = f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/prices/unpriced"
        assert httpx.get(unpriced, headers=admin(ws)).json()["models"] == []
