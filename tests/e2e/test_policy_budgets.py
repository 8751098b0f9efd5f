"""Budgets end to end: settings API → spend on the policy engine → flags, hard-stop and observe mode at the gateway.

The gateway reads the policy projection on every ingest; the engine writes it once it has counted an
event (the projection delay, ADR 10). Each step here waits until the engine has counted the previous
event, so which answer carries which flag is deterministic.
"""

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from opsmeter_contracts import Topics, decode_event
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack
from tests.e2e.test_ingest_to_usage import eventually

THIRTY_CENTS = {"inputTokens": 2_000_000, "outputTokens": 0}
"""gpt-4o-mini input at $0.15 per million tokens: exactly $0.30."""


class Workspace:
    def __init__(self, stack: RunningStack) -> None:
        self.stack = stack
        created = stack.create_workspace()
        self.id: str = created["workspaceId"]
        self.api_key: str = created["apiKey"]
        self.auth = {"Authorization": f"Bearer {created['adminToken']}"}

    def policy_url(self, path: str) -> str:
        return f"{self.stack.url('policy-engine')}/v1/workspaces/{self.id}/{path}"

    def put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.put(self.policy_url(path), json=body, headers=self.auth, timeout=30)

    def spend(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(self.policy_url("spend"), headers=self.auth).json()
        return answer

    def ingest(self, **overrides: Any) -> httpx.Response:
        body = {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}", **THIRTY_CENTS, **overrides}
        return httpx.post(
            f"{self.stack.url('ingest-gateway')}/v1/ingest/llm-request",
            content=json.dumps(body).encode(),
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )

    def ingest_counted(self, **overrides: Any) -> dict[str, Any]:
        """Ingest one event and wait until the policy engine has counted it."""
        before = self.spend()["daily"]["currentSpendMicroUsd"]
        answer = self.ingest(**overrides)
        assert answer.status_code == 202, answer.text
        eventually(lambda: self.spend()["daily"]["currentSpendMicroUsd"] > before, timeout=15)
        body: dict[str, Any] = answer.json()
        return body


def decisions_of(stack: RunningStack, workspace_id: str, expected: set[str], timeout: float = 20.0) -> Counter[str]:
    """Distinct decision events of one workspace by type, read from the start of ``policy.decisions``."""

    async def read() -> Counter[str]:
        consumer = AIOKafkaConsumer(
            Topics.POLICY_DECISIONS, bootstrap_servers=stack.engines.kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        seen: dict[str, str] = {}
        try:
            async with asyncio.timeout(timeout):
                while True:
                    batch = await consumer.getmany(timeout_ms=300)
                    for records in batch.values():
                        for record in records:
                            event = decode_event(record.value or b"")
                            if event.workspace_id == workspace_id:
                                seen[str(event.event_id)] = event.type
                    if expected <= set(seen.values()) and not any(batch.values()):
                        return Counter(seen.values())
        finally:
            await consumer.stop()

    return asyncio.run(read())


class TestBudgetFlagsAndHardStop:
    def test_warning_then_exceeded_then_hard_stop_then_observe(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        assert ws.put("budgets", {"dailyUsd": 1.0, "warningThresholdRatio": 0.5}).status_code == 200

        first = ws.ingest_counted()
        assert (first["budgetWarning"], first["budgetExceeded"]) == (False, False)
        second = ws.ingest().json()
        assert (second["budgetWarning"], second["isBudgetWarning"], second["budgetExceeded"]) == (True, True, False)
        third = ws.ingest().json()
        assert (third["budgetWarning"], third["budgetExceeded"]) == (True, False)
        fourth = ws.ingest().json()
        assert (fourth["budgetExceeded"], fourth["isBudgetExceeded"], fourth["budgetWarning"]) == (True, True, True)
        assert (fourth["policyMode"], fourth["telemetryPaused"]) == ("enforce", False)
        eventually(lambda: ws.spend()["budgetExceeded"] is True, timeout=15)
        advisory = ws.ingest_counted()
        assert (advisory["budgetExceeded"], advisory["policyMode"], advisory["telemetryPaused"]) == (
            True,
            "enforce",
            False,
        )

        assert ws.put("policy", {"enforcement": "hard_stop"}).json()["enforcement"] == "hard_stop"
        stopped = ws.ingest()
        assert stopped.status_code == 402
        assert stopped.json()["reason"] == "budget_exceeded"
        assert (stopped.json()["telemetryPaused"], stopped.json()["providerCallsContinue"]) == (True, True)

        assert ws.put("policy", {"killSwitch": True}).json()["policyMode"] == "observe"
        observed = ws.ingest()
        assert observed.status_code == 202
        assert (observed.json()["policyMode"], observed.json()["budgetExceeded"]) == ("observe", True)

        decisions = decisions_of(
            stack,
            ws.id,
            {
                "policy.budget_warning_reached",
                "policy.budget_exceeded",
                "policy.enforcement_changed",
                "policy.kill_switch_changed",
            },
        )
        assert decisions == {
            "policy.budget_warning_reached": 1,
            "policy.budget_exceeded": 1,
            "policy.enforcement_changed": 1,
            "policy.kill_switch_changed": 1,
        }

    def test_hard_stop_overshoots_by_at_most_the_one_event_that_crosses(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        assert ws.put("budgets", {"dailyUsd": 1.0}).status_code == 200
        assert ws.put("policy", {"enforcement": "hard_stop"}).status_code == 200
        ws.ingest_counted()

        async def race() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as http:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"{stack.url('ingest-gateway')}/v1/ingest/llm-request",
                            json={**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}", **THIRTY_CENTS},
                            headers={"X-API-Key": ws.api_key},
                        )
                        for _ in range(10)
                    )
                )
            return [a.status_code for a in answers]

        statuses = asyncio.run(race())
        assert statuses.count(202) == 3, "$0.30 + 3 × $0.30 = $1.20: the fourth event crosses, nothing after it"
        assert statuses.count(402) == 7

    def test_a_lowered_budget_flags_existing_spend_without_a_new_event(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        ws.ingest_counted()
        assert ws.spend()["budgetExceeded"] is False
        ws.put("budgets", {"monthlyUsd": 0.25})
        assert ws.ingest().json()["budgetExceeded"] is True

    def test_only_real_events_count(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        ws.put("budgets", {"dailyUsd": 0.5})
        for mode in ("test", "demo"):
            assert ws.ingest(dataMode=mode).status_code == 202
        ws.ingest_counted()
        assert ws.spend()["daily"]["currentSpendMicroUsd"] == 300_000


class TestModelScopedBudget:
    def test_a_budget_for_a_model_as_typed_counts_that_models_calls_and_warns(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        scoped = {"dimension": "model", "value": "GPT-4o-mini-2024-07-18", "dailyUsd": 1.0}
        saved = ws.put("budgets", {"warningThresholdRatio": 0.5, "scoped": [scoped]})
        assert saved.status_code == 200, saved.text
        assert saved.json()["scoped"][0]["value"] == "gpt-4o-mini", "saved as the model_normalized it counts"
        rule = {"id": "mini", "metric": "costPerRequest", "maxUsd": 1.0, "model": "gpt-4o-mini-2024-07-18"}
        assert ws.put("rules", {"rules": [rule]}).json()["rules"][0]["model"] == "gpt-4o-mini"

        ws.ingest_counted(model="gpt-4o")
        ws.ingest_counted()
        assert ws.spend()["budgetWarning"] is False, "$5 of gpt-4o and $0.30 of gpt-4o-mini: under half of $1"
        ws.ingest_counted()
        spend = ws.spend()
        assert (spend["budgetWarning"], spend["budgetExceeded"]) == (True, False)
        [mini] = spend["scoped"]  # which budget set the flag: only a scoped one is set
        assert (mini["dimension"], mini["value"], mini["window"]) == ("model", "gpt-4o-mini", "daily")
        assert (mini["currentSpendUsd"], mini["limitUsd"], mini["isWarning"], mini["isExceeded"]) == (
            "0.6",
            "1",
            True,
            False,
        )
        assert decisions_of(stack, ws.id, {"policy.budget_warning_reached"}) == {"policy.budget_warning_reached": 1}
        assert ws.ingest().json()["budgetWarning"] is True
        got = httpx.get(ws.policy_url("budgets"), headers=ws.auth).json()
        assert got["scoped"][0]["value"] == "gpt-4o-mini"


class TestScopedHardStop:
    def test_an_exceeded_user_budget_stops_that_users_events_and_no_one_elses(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        heavy = {"dimension": "userId", "value": "u_heavy", "dailyUsd": 0.5}
        assert ws.put("budgets", {"scoped": [heavy]}).status_code == 200
        assert ws.put("policy", {"enforcement": "hard_stop"}).status_code == 200
        ws.ingest_counted(userId="u_heavy")
        ws.ingest_counted(userId="u_heavy")  # $0.60 of a $0.50 budget
        eventually(lambda: ws.spend()["budgetExceeded"] is True, timeout=15)

        stopped = ws.ingest(userId="u_heavy")
        assert stopped.status_code == 402, stopped.text
        assert (stopped.json()["reason"], stopped.json()["budgetScope"]) == (
            "budget_exceeded",
            {"dimension": "userId", "value": "u_heavy"},
        )
        assert "u_heavy" in stopped.json()["message"]
        other = ws.ingest(userId="u_light")
        assert other.status_code == 202, other.text
        assert (other.json()["budgetExceeded"], other.json()["telemetryPaused"]) == (True, False)
        status = httpx.get(
            f"{stack.url('ingest-gateway')}/v1/workspaces/{ws.id}/status", headers=ws.auth, timeout=10
        ).json()
        assert status["telemetryPaused"] is False, "one user's budget does not pause the workspace"

        runtime = httpx.get(
            f"{stack.url('policy-engine')}/v1/runtime/policy", headers={"X-API-Key": ws.api_key}, timeout=10
        ).json()
        assert runtime["workspaceBudget"] == {"warning": False, "exceeded": False}
        assert [(s["dimension"], s["value"], s["exceeded"]) for s in runtime["scopedBudgets"]] == [
            ("userId", "u_heavy", True)
        ]

        workspace_budget = ws.put("budgets", {"scoped": [heavy], "dailyUsd": 0.5})
        assert workspace_budget.status_code == 200
        eventually(lambda: ws.ingest(userId="u_light").status_code == 402, timeout=15)


class TestSettingsApi:
    def test_settings_round_trip_with_who_changed_them(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        budgets = {
            "dailyUsd": 5.0,
            "monthlyUsd": 100.0,
            "warningThresholdRatio": 0.8,
            "alertThresholds": [0.5, 0.9],
            "scoped": [{"dimension": "endpointTag", "value": "checkout.ai_summary", "monthlyUsd": 10.0}],
        }
        assert ws.put("budgets", budgets).status_code == 200
        rules = {"rules": [{"id": "expensive", "metric": "costPerRequest", "maxUsd": 0.05, "model": "gpt-4o"}]}
        assert ws.put("rules", rules).status_code == 200
        got = httpx.get(ws.policy_url("budgets"), headers=ws.auth).json()
        assert (got["dailyUsd"], got["monthlyUsd"], got["alertThresholds"]) == ("5", "100", [0.5, 0.9])
        assert got["scoped"][0] == {
            "dimension": "endpointTag",
            "value": "checkout.ai_summary",
            "dailyUsd": None,
            "monthlyUsd": "10",
        }
        assert got["changedBy"]["role"] == "owner"
        assert got["version"] == 2, "the rules change kept the budgets and bumped the version"
        got_rules = httpx.get(ws.policy_url("rules"), headers=ws.auth).json()["rules"]
        assert (got_rules[0]["maxUsd"], got_rules[0]["enabled"]) == ("0.05", True)

    def test_writes_need_a_token_of_the_workspace(self, stack: RunningStack) -> None:
        ws, other = Workspace(stack), Workspace(stack)
        assert httpx.put(ws.policy_url("policy"), json={"killSwitch": True}).status_code == 401
        assert httpx.put(ws.policy_url("policy"), json={"killSwitch": True}, headers=other.auth).status_code == 404
        assert ws.put("budgets", {"dailyUsd": -1}).status_code == 422


class TestWorkspaceStatusBudget:
    def test_the_status_shows_the_budget_windows(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        assert ws.put("budgets", {"dailyUsd": 1.0, "monthlyUsd": 10.0, "warningThresholdRatio": 0.5}).status_code == 200
        ws.ingest_counted()

        def budget() -> dict[str, Any]:
            status: dict[str, Any] = httpx.get(
                f"{stack.url('ingest-gateway')}/v1/diagnostics/workspace-status", headers={"X-API-Key": ws.api_key}
            ).json()
            shown: dict[str, Any] = status["budget"]
            return shown

        eventually(lambda: (budget()["daily"] or {}).get("currentSpendUsd") == "0.3", timeout=15)
        shown = budget()
        assert shown["warningThresholdRatio"] == 0.5
        assert shown["daily"]["limitUsd"] == "1"
        assert shown["daily"]["utilizationRatio"] == 0.3
        assert (shown["daily"]["isWarning"], shown["daily"]["isExceeded"]) == (False, False)
        assert shown["monthly"]["limitUsd"] == "10"
        assert "projectedEndOfPeriodUsd" in shown["monthly"]
        assert shown["daily"]["periodStart"].endswith("T00:00:00Z")


class TestRoles:
    def test_members_read_settings_and_only_owners_and_admins_change_them(self, stack: RunningStack) -> None:
        ws = Workspace(stack)
        tokens = f"{stack.url('ingest-gateway')}/v1/workspaces/{ws.id}/admin-tokens"
        member = httpx.post(tokens, json={"role": "member", "name": "analyst"}, headers=ws.auth)
        admin = httpx.post(tokens, json={"role": "admin"}, headers=ws.auth)
        assert (member.status_code, admin.status_code) == (201, 201)
        as_member = {"Authorization": f"Bearer {member.json()['adminToken']}"}
        as_admin = {"Authorization": f"Bearer {admin.json()['adminToken']}"}

        assert httpx.get(ws.policy_url("budgets"), headers=as_member).status_code == 200
        refused = httpx.put(ws.policy_url("budgets"), json={"dailyUsd": 2.0}, headers=as_member)
        assert refused.status_code == 403
        assert httpx.put(ws.policy_url("budgets"), json={"dailyUsd": 2.0}, headers=as_admin).status_code == 200
        assert httpx.post(tokens, json={"role": "member"}, headers=as_admin).status_code == 403
