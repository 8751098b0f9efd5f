"""Reporting over the whole stack: plan gates, spike, reports, exports, analyst SQL, rebuild."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opsmeter_cli.main import app
from opsmeter_cli.stack import operator_token
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack
from tests.e2e.test_ingest_to_usage import eventually


def get(stack: RunningStack, ws: dict[str, Any], path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/{path}",
        params=params,
        headers={"Authorization": f"Bearer {ws['adminToken']}"},
        timeout=30,
    )


def send(stack: RunningStack, ws: dict[str, Any], at: datetime, **fields: Any) -> None:
    body = {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}", "timestamp": at.isoformat(), **fields}
    answer = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/ingest/llm-request", json=body, headers={"X-API-Key": ws["apiKey"]}
    )
    assert answer.status_code == 202, answer.text


@pytest.fixture(scope="module")
def pro(stack: RunningStack) -> dict[str, Any]:
    ws = stack.create_workspace("pro")
    now = datetime.now(UTC).replace(microsecond=0)
    for minutes in (100, 90):
        send(stack, ws, now - timedelta(minutes=minutes))
    for minutes in (50, 40, 30):
        send(stack, ws, now - timedelta(minutes=minutes), model="gpt-4o", endpointTag="search.rerank")
    eventually(lambda: get(stack, ws, "usage").json()["totals"]["requests"] == 5, timeout=20)
    return {**ws, "now": now}


class TestPlanGates:
    def test_a_free_workspace_gets_403_on_the_quality_score(self, stack: RunningStack) -> None:
        free = stack.create_workspace("free")
        answer = get(stack, free, "quality-score")
        assert answer.status_code == 403
        body = answer.json()
        assert (body["error"], body["reason"], body["requiredPlan"]) == ("plan_required", "plan_required", "pro")
        assert get(stack, free, "onboarding/checklist").json()["requiredPlan"] == "starter"
        assert get(stack, free, "spike", window="24h").status_code == 200

    def test_the_weekly_report_needs_team(self, stack: RunningStack, pro: dict[str, Any]) -> None:
        assert get(stack, pro, "reports/weekly-executive").json()["requiredPlan"] == "team"


class TestRetentionWindow:
    """SPEC §8: a range that starts before the plan's raw window says 'Retention window applied'."""

    def test_usage_and_spike_say_when_they_reach_before_the_raw_window(
        self, stack: RunningStack, pro: dict[str, Any]
    ) -> None:
        free = stack.create_workspace("free")
        now = datetime.now(UTC)

        def usage_since(ws: dict[str, Any], days: int) -> dict[str, Any]:
            found: dict[str, Any] = get(stack, ws, "usage", **{"from": (now - timedelta(days=days)).isoformat()}).json()
            return found

        week, month = usage_since(free, 7), usage_since(free, 30)
        assert (week["retentionWindowApplied"], week["notice"], week["rawRetentionDays"]) == (False, None, 14)
        assert (month["retentionWindowApplied"], month["notice"]) == (True, "Retention window applied")
        assert get(stack, free, "spike", window="7d").json()["retentionWindowApplied"] is False
        assert get(stack, free, "spike", window="30d").json()["retentionWindowApplied"] is True, "its previous 30 days"
        assert (usage_since(pro, 30)["retentionWindowApplied"], usage_since(pro, 30)["rawRetentionDays"]) == (False, 90)


class TestUnpricedCalls:
    def test_usage_counts_the_calls_no_price_covered(self, stack: RunningStack) -> None:
        ws = stack.create_workspace("starter")
        now = datetime.now(UTC).replace(microsecond=0)
        send(stack, ws, now - timedelta(minutes=20), model="acme-unlisted-1")
        send(stack, ws, now - timedelta(minutes=10))
        eventually(lambda: get(stack, ws, "usage").json()["totals"]["requests"] == 2, timeout=20)

        totals = get(stack, ws, "usage").json()["totals"]

        assert totals["unpricedRequests"] == 1, "a $0 call to an unpriced model is not silent"
        listed = get(stack, ws, "prices/unpriced").json()["models"]
        assert [(m["model"], m["requests"]) for m in listed] == [("acme-unlisted-1", 1)]


class TestBudgetHistory:
    def test_the_board_pack_lists_budget_and_policy_decisions(self, stack: RunningStack) -> None:
        from tests.e2e.test_policy_budgets import Workspace

        ws = Workspace(stack)
        assert ws.put("budgets", {"dailyUsd": 0.5, "warningThresholdRatio": 0.5}).status_code == 200
        ws.ingest_counted()  # $0.30 of $0.50: past the 50 % warning
        ws.ingest_counted()  # $0.60: exceeded
        assert ws.put("policy", {"killSwitch": True}).status_code == 200
        today = str(datetime.now(UTC).date())
        as_dict = {"workspaceId": ws.id, "adminToken": ws.auth["Authorization"].removeprefix("Bearer ")}

        def history() -> list[str]:
            pack = get(stack, as_dict, "exports/board-pack", **{"from": today, "to": today, "format": "json"})
            return [line["summary"] for line in pack.json()["budgetHistory"]]

        lines = eventually(lambda: (found := history()) and len(found) >= 3 and found, timeout=20)
        assert lines == [
            "Budget warning (50 %): workspace daily budget: 0.3 of 0.5 USD",
            "Budget exceeded: workspace daily budget: 0.6 of 0.5 USD",
            "Kill switch turned on (observe mode) by the owner",
        ]


class TestSettingsHistory:
    def test_every_settings_change_is_kept_with_who_and_what(self, stack: RunningStack) -> None:
        from tests.e2e.test_policy_budgets import Workspace

        ws = Workspace(stack)
        assert ws.put("budgets", {"dailyUsd": 10.0}).status_code == 200
        assert ws.put("policy", {"killSwitch": True}).status_code == 200
        assert ws.put("budgets", {"dailyUsd": 20.0}).status_code == 200
        as_dict = {"workspaceId": ws.id, "adminToken": ws.auth["Authorization"].removeprefix("Bearer ")}

        def changes() -> list[dict[str, Any]] | None:
            found: list[dict[str, Any]] = get(stack, as_dict, "settings-history").json()["changes"]
            return found if len(found) == 3 else None

        history = eventually(changes, timeout=20)
        assert [c["version"] for c in history] == [3, 2, 1], "newest first, none lost to the compacted topic"
        assert history[0]["summary"].startswith("Budgets: daily 20 USD, monthly none")
        assert history[1]["summary"] == "Policy: enforcement advisory, kill switch on, cost basis computed"
        assert history[2]["summary"].startswith("Budgets: daily 10 USD, monthly none")
        assert {(c["changedBy"]["role"], tuple(c["sections"])) for c in history} == {
            ("owner", ("budgets",)),
            ("owner", ("policy",)),
        }
        other = stack.create_workspace()
        assert get(stack, other, "settings-history").json()["changes"] == [], "each workspace sees its own"


class TestReportsOverTheStack:
    def test_spike_names_the_new_endpoint_first(self, stack: RunningStack, pro: dict[str, Any]) -> None:
        now = pro["now"]
        answer = get(stack, pro, "spike", **{"from": (now - timedelta(hours=1)).isoformat(), "to": now.isoformat()})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["current"]["requests"], body["previous"]["requests"]) == (3, 2)
        top = body["drivers"]["endpointTag"][0]
        assert (top["key"], top["isNew"]) == ("search.rerank", True)
        parts = body["decomposition"]
        assert (
            parts["volume"]["microUsd"] + parts["unitCost"]["microUsd"] + parts["mix"]["microUsd"]
            == body["delta"]["costMicroUsd"]
        )

    def test_quality_score_and_checklist_for_pro(self, stack: RunningStack, pro: dict[str, Any]) -> None:
        score = eventually(
            lambda: (
                get(stack, pro, "quality-score").json().get("score") is not None and get(stack, pro, "quality-score")
            )
        )
        assert score.status_code == 200
        body = score.json()
        assert 0 <= body["score"] <= 100
        assert {p["id"] for p in body["parts"]} >= {"endpointTag", "userId", "promptVersion", "freshness"}
        checklist = get(stack, pro, "onboarding/checklist").json()
        assert {i["id"]: i["done"] for i in checklist["items"]}["first_real_event"] is True

    def test_board_pack_csv_and_pdf(self, stack: RunningStack, pro: dict[str, Any]) -> None:
        day = pro["now"].date()
        csv = get(stack, pro, "exports/board-pack", **{"from": str(day - timedelta(days=1)), "to": str(day)})
        assert csv.status_code == 200, csv.text
        summary = next(line for line in csv.text.splitlines() if line.startswith("summary,"))
        assert summary.split(",")[5] == "5"
        pdf = get(
            stack,
            pro,
            "exports/board-pack",
            **{"from": str(day - timedelta(days=100)), "to": str(day), "format": "pdf"},
        )
        assert pdf.content.startswith(b"%PDF")
        json_pack = get(
            stack,
            pro,
            "exports/board-pack",
            **{"from": str(day - timedelta(days=100)), "to": str(day), "format": "json"},
        )
        assert json_pack.json()["notice"] == "Retention window applied"

    def test_weekly_report_json_and_html_for_team(self, stack: RunningStack) -> None:
        team = stack.create_workspace("team")
        report = eventually(lambda: (r := get(stack, team, "reports/weekly-executive")).status_code == 200 and r)
        week = report.json()["week"]
        today = datetime.now(UTC).date()
        assert (week["from"], week["to"]) == (f"{today - timedelta(days=7)}T00:00:00Z", f"{today}T00:00:00Z")
        html = get(stack, team, "reports/weekly-executive.html")
        assert "<svg" in html.text
        assert "<script" not in html.text


class TestAnalystAccess:
    def test_a_workspace_token_sees_only_its_workspace(self, stack: RunningStack, pro: dict[str, Any]) -> None:
        answer = httpx.post(
            f"{stack.url('reporting')}/v1/workspaces/{pro['workspaceId']}/sql",
            json={"sql": "SELECT workspace_id, count() AS n FROM llm_requests_raw GROUP BY workspace_id"},
            headers={"Authorization": f"Bearer {pro['adminToken']}"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == [[pro["workspaceId"], 5]]
        refused = httpx.post(
            f"{stack.url('reporting')}/v1/workspaces/{pro['workspaceId']}/sql",
            json={"sql": "SELECT * FROM system.tables"},
            headers={"Authorization": f"Bearer {pro['adminToken']}"},
        )
        assert refused.status_code == 422

    def test_the_operator_rebuilds_rollups_and_totals_stay(self, stack: RunningStack, pro: dict[str, Any]) -> None:
        now = pro["now"]
        before = get(stack, pro, "spike", window="24h").json()["current"]
        answer = httpx.post(
            f"{stack.url('reporting')}/v1/admin/rollups/rebuild",
            json={"from": (now - timedelta(days=1)).isoformat(), "to": now.isoformat()},
            headers={"X-Operator-Token": operator_token(stack.config)},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert get(stack, pro, "spike", window="24h").json()["current"]["costMicroUsd"] == before["costMicroUsd"]
        assert httpx.post(f"{stack.url('reporting')}/v1/admin/rollups/rebuild", json={}).status_code == 401

    def test_the_cli_goes_through_reporting(self, stack: RunningStack, pro: dict[str, Any]) -> None:
        env = {
            "OPSMETER_REPORTING_URL": stack.url("reporting"),
            "OPSMETER_OPERATOR_TOKEN": operator_token(stack.config),
        }
        query = f"SELECT count() AS n FROM llm_requests_raw WHERE workspace_id = '{pro['workspaceId']}'"
        result = CliRunner().invoke(app, ["sql", query, "--json"], env=env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["rows"] == [[5]]
        now = pro["now"]
        rebuilt = CliRunner().invoke(
            app, ["reporting", "rebuild", "--from", str(now - timedelta(days=1)), "--to", str(now)], env=env
        )
        assert rebuilt.exit_code == 0, rebuilt.output


class TestSinkMetrics:
    def test_metrics_export_consumer_lag_and_sink_counters(self, stack: RunningStack, pro: dict[str, Any]) -> None:
        text = httpx.get(f"{stack.url('reporting')}/metrics").text
        assert 'opsmeter_reporting_sink_events_total{outcome="inserted"}' in text
        assert 'opsmeter_consumer_lag{group="reporting.sink",topic="telemetry.llm-requests"' in text
