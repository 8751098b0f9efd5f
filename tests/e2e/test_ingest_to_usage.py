"""Drive the HTTP API end to end: gateway → Kafka → reporting (ClickHouse) and policy-engine (Redis)."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from opsmeter_contracts import Topics, decode_event
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack

EXAMPLE = SPEC_EXAMPLE_BODY
STATUS_FIELDS = {
    "status", "reason", "telemetryPaused", "providerCallsContinue", "isPlanLimitReached", "budgetWarning",
    "budgetExceeded", "isBudgetWarning", "isBudgetExceeded", "policyMode", "warnings",
}  # fmt: skip


@pytest.fixture(scope="module")
def workspace(stack: RunningStack) -> dict[str, Any]:
    return stack.create_workspace()


def ingest(stack: RunningStack, key: str, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"X-API-Key": key, "Content-Type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{stack.url('ingest-gateway')}/v1/ingest/llm-request", content=content, headers=headers)


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.1)


def usage(stack: RunningStack, workspace: dict[str, Any], token: str | None = None, **params: str) -> httpx.Response:
    return httpx.get(
        f"{stack.url('reporting')}/v1/workspaces/{workspace['workspaceId']}/usage",
        params=params,
        headers={"Authorization": f"Bearer {token or workspace['adminToken']}"},
    )


def unique_body(**overrides: Any) -> dict[str, Any]:
    return {**EXAMPLE, "externalRequestId": f"req_{uuid.uuid4().hex}", **overrides}


class TestAcceptedEvents:
    def test_the_spec_example_is_accepted_priced_and_shows_in_usage(
        self, stack: RunningStack, workspace: dict[str, Any]
    ) -> None:
        answer = ingest(stack, workspace["apiKey"], unique_body())
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert set(body) >= STATUS_FIELDS
        assert body["status"] == "accepted"
        assert body["reason"] is None
        assert body["providerCallsContinue"] is True
        assert body["costUsd"] == "0.00022"
        assert body["costMicroUsd"] == 220
        rows = eventually(lambda: usage(stack, workspace, groupBy="model").json()["rows"])
        assert rows == [
            {
                "key": "gpt-4o-mini",
                "requests": 1,
                "inputTokens": 812,
                "outputTokens": 164,
                "totalTokens": 976,
                "costUsd": "0.00022",
                "costMicroUsd": 220,
                "computedCostUsd": "0.00022",
                "reportedCostUsd": "0",
                "reportedRequests": 0,
                "reportedMinusComputedUsd": "0",
            }
        ]

    def test_spend_reaches_the_policy_engine(self, stack: RunningStack) -> None:
        ws = stack.create_workspace()
        assert ingest(stack, ws["apiKey"], unique_body(inputTokens=1_000_000, outputTokens=0)).status_code == 202

        def spend() -> Any:
            answer = httpx.get(
                f"{stack.url('policy-engine')}/v1/workspaces/{ws['workspaceId']}/spend",
                headers={"Authorization": f"Bearer {ws['adminToken']}"},
            )
            return answer.json()["daily"]["currentSpendMicroUsd"] == 150_000

        eventually(spend)

    def test_an_unknown_model_is_accepted_unpriced_with_a_warning(
        self, stack: RunningStack, workspace: dict[str, Any]
    ) -> None:
        body = ingest(stack, workspace["apiKey"], unique_body(model="acme-llm-9000")).json()
        assert (body["costUsd"], body["priced"]) == ("0", False)
        assert any("acme-llm-9000" in w and "unpriced" in w for w in body["warnings"])

    def test_a_redelivered_event_is_counted_once(self, stack: RunningStack) -> None:
        ws = stack.create_workspace()
        assert ingest(stack, ws["apiKey"], unique_body()).status_code == 202
        eventually(lambda: usage(stack, ws).json()["totals"]["requests"] == 1)

        async def redeliver() -> None:
            consumer = AIOKafkaConsumer(
                Topics.TELEMETRY, bootstrap_servers=stack.engines.kafka_bootstrap, auto_offset_reset="earliest"
            )
            await consumer.start()
            raw: bytes | None = None
            try:
                async with asyncio.timeout(30):
                    while raw is None:
                        for records in (await consumer.getmany(timeout_ms=200)).values():
                            for r in records:
                                if r.value and decode_event(r.value).workspace_id == ws["workspaceId"]:
                                    raw = r.value
            finally:
                await consumer.stop()
            publisher = EventPublisher(stack.engines.settings(), client_id="redeliver")
            await publisher.start()
            try:
                for _ in range(3):
                    await publisher.publish_raw(Topics.TELEMETRY, ws["workspaceId"].encode(), raw)
            finally:
                await publisher.stop()

        asyncio.run(redeliver())
        marker = unique_body(model="gpt-4o")
        assert ingest(stack, ws["apiKey"], marker).status_code == 202
        eventually(lambda: usage(stack, ws).json()["totals"]["requests"] == 2)
        assert usage(stack, ws, groupBy="model").json()["rows"][1]["requests"] == 1


class TestRejections:
    def test_an_unknown_key_gets_401(self, stack: RunningStack) -> None:
        answer = ingest(stack, "om_live_abcdefabcdef_" + "0" * 48, unique_body())
        assert answer.status_code == 401
        assert answer.json()["reason"] == "unauthorized"
        assert set(answer.json()) >= STATUS_FIELDS

    def test_a_missing_key_gets_401(self, stack: RunningStack) -> None:
        answer = httpx.post(f"{stack.url('ingest-gateway')}/v1/ingest/llm-request", json=unique_body())
        assert answer.status_code == 401

    def test_an_admin_token_is_not_an_ingest_key(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        assert ingest(stack, workspace["adminToken"], unique_body()).status_code == 401

    def test_malformed_json_gets_400(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        answer = ingest(stack, workspace["apiKey"], b'{"externalRequestId": ')
        assert answer.status_code == 400
        assert answer.json()["reason"] == "invalid_payload"

    def test_wrong_content_type_gets_415(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        answer = ingest(stack, workspace["apiKey"], unique_body(), headers={"Content-Type": "text/plain"})
        assert answer.status_code == 415

    def test_a_body_over_64_kib_gets_413(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        answer = ingest(stack, workspace["apiKey"], unique_body(provider="x" * 70_000))
        assert answer.status_code == 413
        assert answer.json()["reason"] == "invalid_payload"

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("inputTokens", "812"),
            ("inputTokens", 812.5),
            ("outputTokens", -1),
            ("inputTokens", 10_000_001),
            ("provider", ""),
            ("model", "m" * 129),
            ("externalRequestId", "r" * 129),
            ("endpointTag", "e" * 129),
            ("promptVersion", "p" * 65),
            ("userId", "u" * 129),
            ("latencyMs", 3_600_001),
            ("status", "ok"),
            ("dataMode", "prod"),
            ("environment", "qa"),
            ("errorCode", "e" * 65),
            ("timestamp", "2026-11-25T12:00:00"),
            ("timestamp", "2020-01-01T00:00:00Z"),
            ("totalTokens", 5),
            ("cachedInputTokens", 10_000),
            ("metadata", {f"k{i}": i for i in range(21)}),
            ("metadata", {"nested": {"a": 1}}),
            ("surprise", 1),
        ],
    )
    def test_each_field_rule_gets_422_naming_the_field(
        self, stack: RunningStack, workspace: dict[str, Any], field: str, value: Any
    ) -> None:
        answer = ingest(stack, workspace["apiKey"], unique_body(**{field: value}))
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["reason"] == "invalid_payload"
        assert field in {e["field"] for e in body["errors"]}

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e309"])
    def test_non_finite_numbers_get_422(self, stack: RunningStack, workspace: dict[str, Any], literal: str) -> None:
        raw = json.dumps(unique_body()).replace('"inputTokens": 812', f'"inputTokens": {literal}').encode()
        answer = ingest(stack, workspace["apiKey"], raw)
        assert answer.status_code == 422
        assert [e["field"] for e in answer.json()["errors"]] == ["inputTokens"]

    def test_nothing_invalid_reaches_the_topic(self, stack: RunningStack) -> None:
        ws = stack.create_workspace()
        bad = [unique_body(inputTokens="1"), unique_body(status="nope"), unique_body(extra=True)]
        for body in bad:
            assert ingest(stack, ws["apiKey"], body).status_code == 422
        good = unique_body()
        assert ingest(stack, ws["apiKey"], good).status_code == 202

        async def ids_on_topic() -> list[str]:
            consumer = AIOKafkaConsumer(
                Topics.TELEMETRY, bootstrap_servers=stack.engines.kafka_bootstrap, auto_offset_reset="earliest"
            )
            await consumer.start()
            found: list[str] = []
            try:
                async with asyncio.timeout(30):
                    while good["externalRequestId"] not in found:
                        for records in (await consumer.getmany(timeout_ms=200)).values():
                            for r in records:
                                event = decode_event(r.value or b"")
                                if event.workspace_id == ws["workspaceId"]:
                                    found.append(event.payload.external_request_id)
            finally:
                await consumer.stop()
            return found

        assert asyncio.run(ids_on_topic()) == [good["externalRequestId"]]


class TestUsageAccess:
    def test_another_workspace_token_cannot_read_usage(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        other = stack.create_workspace()
        assert usage(stack, workspace, token=other["adminToken"]).status_code == 404

    def test_an_ingest_key_is_not_an_admin_token(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        assert usage(stack, workspace, token=workspace["apiKey"]).status_code == 401

    def test_a_naive_range_is_refused(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        answer = usage(stack, workspace, **{"from": "2026-11-01T00:00:00"})
        assert answer.status_code == 422


class TestPricingCatalog:
    def test_the_catalog_is_public_and_versioned(self, stack: RunningStack) -> None:
        body = httpx.get(f"{stack.url('ingest-gateway')}/v1/public/pricing-models").json()
        assert body["catalogVersion"].startswith("genai-prices-")
        mini = next(m for m in body["models"] if (m["provider"], m["model"]) == ("openai", "gpt-4o-mini"))
        assert mini["prices"][-1]["inputUsdPerMtok"] == "0.15"
        pro = next(m for m in body["models"] if (m["provider"], m["model"]) == ("google", "gemini-2.5-pro"))
        assert pro["prices"][-1]["tiers"][0]["aboveInputTokens"] == 200_000

    def test_a_long_context_call_costs_the_providers_tier(self, stack: RunningStack) -> None:
        """250,000 input tokens of gemini-2.5-pro cost $2.50/M and 1,000 output $15/M (not the base $0.3225)."""
        key = stack.create_workspace()["apiKey"]
        call = {"model": "gemini-2.5-pro", "provider": "google", "inputTokens": 250_000, "outputTokens": 1_000}
        answer = ingest(stack, key, unique_body(**call))
        assert answer.status_code == 202, answer.text
        assert (answer.json()["costUsd"], answer.json()["priced"]) == ("0.64", True)


class TestReportedCost:
    def test_budgets_and_reports_use_the_workspace_cost_basis_and_show_both(self, stack: RunningStack) -> None:
        """reportedCostUsd is kept beside the computed cost; with ``reported_when_present`` budgets and /usage count
        the reported cost where the client sent one (ADR 57)."""
        ws = stack.create_workspace()
        admin = {"Authorization": f"Bearer {ws['adminToken']}"}
        policy_url = f"{stack.url('policy-engine')}/v1/workspaces/{ws['workspaceId']}/policy"
        put = httpx.put(policy_url, json={"costBasis": "reported_when_present"}, headers=admin)
        assert (put.status_code, put.json()["costBasis"]) == (200, "reported_when_present"), put.text
        assert ingest(stack, ws["apiKey"], unique_body(reportedCostUsd="0.0005")).status_code == 202
        assert ingest(stack, ws["apiKey"], unique_body()).status_code == 202  # computed: 220 micro-USD

        def totals() -> Any:
            body = usage(stack, ws).json()
            return body["totals"] if body["totals"]["requests"] == 2 else None

        assert eventually(totals) == {
            "requests": 2,
            "inputTokens": 1624,
            "outputTokens": 328,
            "totalTokens": 1952,
            "costUsd": "0.00072",
            "costMicroUsd": 720,
            "computedCostUsd": "0.00044",
            "reportedCostUsd": "0.0005",
            "reportedRequests": 1,
            "reportedMinusComputedUsd": "0.00028",
            "unpricedRequests": 0,
        }

        def spend() -> Any:
            answer = httpx.get(f"{stack.url('policy-engine')}/v1/workspaces/{ws['workspaceId']}/spend", headers=admin)
            return answer.json()["daily"]["currentSpendMicroUsd"] == 720

        eventually(spend)

    def test_a_reported_cost_that_is_not_a_decimal_string_names_the_field(self, stack: RunningStack) -> None:
        ws = stack.create_workspace()
        answer = ingest(stack, ws["apiKey"], unique_body(reportedCostUsd="1e-3"))
        assert answer.status_code == 422
        assert [e["field"] for e in answer.json()["errors"]] == ["reportedCostUsd"]


class TestHealth:
    def test_every_service_is_live_and_ready(self, stack: RunningStack) -> None:
        for service in stack.config.service_ports:
            assert httpx.get(f"{stack.url(service)}/healthz").status_code == 200
            ready = httpx.get(f"{stack.url(service)}/readyz")
            assert ready.status_code == 200, (service, ready.text)


class TestPolicyStatusInAnswers:
    def test_flags_mode_and_hard_stop_follow_the_policy_projection(self, stack: RunningStack) -> None:
        from redis import Redis

        from opsmeter_runtime.projections import policy_status_key

        ws = stack.create_workspace()
        redis = Redis.from_url(stack.engines.redis_url)
        key = policy_status_key(ws["workspaceId"])
        redis.hset(key, mapping={"budget_warning": 1, "budget_exceeded": 0, "enforcement": "hard_stop"})
        warned = ingest(stack, ws["apiKey"], unique_body()).json()
        assert (warned["budgetWarning"], warned["isBudgetWarning"], warned["budgetExceeded"]) == (True, True, False)

        redis.hset(key, mapping={"budget_exceeded": 1})
        stopped = ingest(stack, ws["apiKey"], unique_body())
        assert stopped.status_code == 402
        assert stopped.json()["reason"] == "budget_exceeded"
        assert stopped.json()["telemetryPaused"] is True
        assert stopped.json()["providerCallsContinue"] is True

        redis.hset(key, mapping={"kill_switch": 1})
        observed = ingest(stack, ws["apiKey"], unique_body())
        assert observed.status_code == 202
        assert observed.json()["policyMode"] == "observe"
        assert observed.json()["budgetExceeded"] is True
