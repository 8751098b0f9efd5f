"""Issue 3: rate limits, quotas, idempotency, batch ingest and workspace status at the gateway."""

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from opsmeter_cli.stack import operator_token
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack
from tests.e2e.test_ingest_to_usage import STATUS_FIELDS, usage
from tests.e2e.test_policy_budgets import decisions_of


def body(**overrides: Any) -> dict[str, Any]:
    return {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}", **overrides}


def create(stack: RunningStack, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/admin/workspaces",
        json={"name": "governance", **fields},
        headers={"X-Operator-Token": operator_token(stack.config)},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def wait_for_plan(stack: RunningStack, ws: dict[str, Any], plan: str) -> None:
    stack.wait_for_plan(ws, plan)


def wait_for_fresh_window(min_left_s: float = 20.0) -> None:
    """Rate windows are whole UTC minutes: start a burst early enough to stay inside one."""
    left = 60 - time.time() % 60
    if left < min_left_s:
        time.sleep(left + 0.2)


async def post_many(url: str, key: str, bodies: list[dict[str, Any]], clients: int) -> list[httpx.Response]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    answers: list[httpx.Response] = []

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            while not queue.empty():
                item = queue.get_nowait()
                answers.append(await http.post(url, json=item, headers={"X-API-Key": key}))

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers


class TestRateLimit:
    def test_free_accepts_exactly_120_per_minute_then_429_with_consistent_headers(self, stack: RunningStack) -> None:
        ws = create(stack, plan="free")
        wait_for_plan(stack, ws, "free")
        wait_for_fresh_window()
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"
        answers = asyncio.run(post_many(url, ws["apiKey"], [body() for _ in range(130)], clients=8))
        statuses = [a.status_code for a in answers]
        assert statuses.count(202) == 120
        assert statuses.count(429) == 10
        for answer in answers:
            assert answer.headers["X-RateLimit-Limit"] == "120"
            reset = int(answer.headers["X-RateLimit-Reset"])
            assert reset % 60 == 0
            assert 0 < reset - time.time() <= 61
        limited = [a for a in answers if a.status_code == 429]
        for answer in limited:
            assert answer.json()["reason"] == "rate_limited"
            assert answer.json()["providerCallsContinue"] is True
            assert answer.headers["X-RateLimit-Remaining"] == "0"
            retry_after = int(answer.headers["Retry-After"])
            assert 1 <= retry_after <= 60
            assert abs(int(answer.headers["X-RateLimit-Reset"]) - (time.time() + retry_after)) <= 2
        remaining = sorted(int(a.headers["X-RateLimit-Remaining"]) for a in answers if a.status_code == 202)
        assert remaining == list(range(120))

    def test_invalid_requests_count_against_the_rate_limit(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=3)
        wait_for_plan(stack, ws, "enterprise")
        wait_for_fresh_window(10)
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"
        statuses = [
            httpx.post(url, json=b, headers={"X-API-Key": ws["apiKey"]}).status_code
            for b in (body(inputTokens="x"), body(), body(), body())
        ]
        assert statuses == [422, 202, 202, 429]


class TestQuota:
    def test_a_quota_raced_by_eight_clients_accepts_exactly_the_quota(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=50)
        wait_for_plan(stack, ws, "enterprise")
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"
        answers = asyncio.run(post_many(url, ws["apiKey"], [body() for _ in range(80)], clients=8))
        assert [a.status_code for a in answers].count(202) == 50
        paused = [a.json() for a in answers if a.status_code == 402]
        assert len(paused) == 30
        for answer in paused:
            assert answer["reason"] == "plan_limit_reached"
            assert answer["telemetryPaused"] is True
            assert answer["isPlanLimitReached"] is True
            assert answer["providerCallsContinue"] is True
        status = httpx.get(
            f"{stack.url('ingest-gateway')}/v1/diagnostics/workspace-status", headers={"X-API-Key": ws["apiKey"]}
        ).json()
        assert status["plan"]["currentRequestCount"] == 50
        assert status["plan"]["remainingRequestCount"] == 0
        assert status["isPlanLimitReached"] is True
        notices = decisions_of(stack, ws["workspaceId"], {"ingest.plan_limit_reached"})
        assert notices == {"ingest.plan_limit_reached": 1}, "one notice per period, not one per refused request"

    def test_a_new_quota_used_up_in_the_same_month_is_announced_again(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=1)
        wait_for_plan(stack, ws, "enterprise")
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"

        def post() -> int:
            return httpx.post(url, json=body(), headers={"X-API-Key": ws["apiKey"]}).status_code

        assert [post(), post()] == [202, 402]
        raised = httpx.put(
            f"{stack.url('ingest-gateway')}/v1/admin/workspaces/{ws['workspaceId']}/plan",
            json={"plan": "enterprise", "monthlyRequestQuota": 2},
            headers={"X-Operator-Token": operator_token(stack.config)},
        )
        assert raised.status_code == 202
        deadline = time.monotonic() + 10
        while (status := post()) == 402:
            assert time.monotonic() < deadline, "the new quota did not apply within 10 s"
            time.sleep(0.1)
        assert [status, post()] == [202, 402]
        deadline = time.monotonic() + 15
        while (notices := decisions_of(stack, ws["workspaceId"], {"ingest.plan_limit_reached"}))[
            "ingest.plan_limit_reached"
        ] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert notices == {"ingest.plan_limit_reached": 2}, "one notice per quota used up"

    def test_only_real_events_count_toward_the_quota(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=1)
        wait_for_plan(stack, ws, "enterprise")
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"

        def post(b: dict[str, Any]) -> int:
            return httpx.post(url, json=b, headers={"X-API-Key": ws["apiKey"]}).status_code

        statuses = [post(body(dataMode="test")), post(body(dataMode="demo")), post(body()), post(body())]
        assert statuses == [202, 202, 202, 402]

    def test_a_batch_past_the_quota_says_at_its_top_that_telemetry_is_paused(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=3)
        wait_for_plan(stack, ws, "enterprise")
        answer = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-requests",
            json={"events": [body() for _ in range(5)]},
            headers={"X-API-Key": ws["apiKey"]},
        ).json()
        assert [r["httpStatus"] for r in answer["results"]] == [202] * 3 + [402] * 2
        assert (answer["telemetryPaused"], answer["isPlanLimitReached"]) == (True, True)

    def test_a_batch_under_the_quota_is_not_paused(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=10)
        wait_for_plan(stack, ws, "enterprise")
        answer = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-requests",
            json={"events": [body() for _ in range(5)]},
            headers={"X-API-Key": ws["apiKey"]},
        ).json()
        assert (answer["status"], answer["telemetryPaused"], answer["isPlanLimitReached"]) == ("accepted", False, False)


class TestQuotaAndHardStop:
    """SPEC §5's order: plan quota (402) before budget hard-stop (402); §6: only real events count toward either."""

    @staticmethod
    def hard_stopped(stack: RunningStack, workspace_id: str) -> None:
        from redis import Redis

        from opsmeter_runtime.projections import policy_status_key

        with Redis.from_url(stack.engines.redis_url) as redis:
            redis.hset(
                policy_status_key(workspace_id),
                mapping={"budget_warning": 1, "budget_exceeded": 1, "enforcement": "hard_stop"},
            )

    def test_with_the_quota_used_up_and_a_hard_stop_the_answer_is_the_plan_limit(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=1)
        wait_for_plan(stack, ws, "enterprise")
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"
        assert httpx.post(url, json=body(), headers={"X-API-Key": ws["apiKey"]}).status_code == 202
        self.hard_stopped(stack, ws["workspaceId"])
        refused = httpx.post(url, json=body(), headers={"X-API-Key": ws["apiKey"]})
        assert refused.status_code == 402
        assert (refused.json()["reason"], refused.json()["isPlanLimitReached"]) == ("plan_limit_reached", True)

    def test_a_hard_stop_refuses_real_events_and_lets_test_and_demo_data_in(self, stack: RunningStack) -> None:
        ws = create(stack, plan="starter")
        wait_for_plan(stack, ws, "starter")
        self.hard_stopped(stack, ws["workspaceId"])
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"
        answers = [
            httpx.post(url, json=body(dataMode=mode), headers={"X-API-Key": ws["apiKey"]})
            for mode in ("test", "demo", "real")
        ]
        assert [a.status_code for a in answers] == [202, 202, 402]
        assert answers[0].json()["budgetExceeded"] is True, "the test event's answer still shows the budget's state"
        assert answers[2].json()["reason"] == "budget_exceeded"


class TestIdempotency:
    def test_repeats_also_concurrent_answer_like_the_first_and_count_once(self, stack: RunningStack) -> None:
        ws = create(stack, plan="starter")
        wait_for_plan(stack, ws, "starter")
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"
        same = body()
        answers = asyncio.run(post_many(url, ws["apiKey"], [same] * 6, clients=6))
        assert [a.status_code for a in answers] == [202] * 6
        payloads = [a.json() for a in answers]
        assert len({p["eventId"] for p in payloads}) == 1
        assert sorted(p["duplicate"] for p in payloads) == [False, True, True, True, True, True]
        assert {p["costUsd"] for p in payloads} == {"0.00022"}
        status = httpx.get(
            f"{stack.url('ingest-gateway')}/v1/diagnostics/workspace-status", headers={"X-API-Key": ws["apiKey"]}
        ).json()
        assert status["plan"]["currentRequestCount"] == 1

        def usage() -> Any:
            return httpx.get(
                f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/usage",
                headers={"Authorization": f"Bearer {ws['adminToken']}"},
            ).json()["totals"]["requests"]

        deadline = time.monotonic() + 10
        while usage() != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)

    def test_repeats_of_a_batch_settled_in_one_write_answer_like_the_first(self, stack: RunningStack) -> None:
        ws = create(stack, plan="starter")
        wait_for_plan(stack, ws, "starter")
        gateway = stack.url("ingest-gateway")
        headers = {"X-API-Key": ws["apiKey"]}
        events = [body(), body(model="gpt-4o"), body()]
        first = httpx.post(f"{gateway}/v1/ingest/llm-requests", json={"events": events}, headers=headers).json()
        assert [r["duplicate"] for r in first["results"]] == [False] * 3

        def part(result: dict[str, Any]) -> tuple[object, ...]:
            return result["eventId"], result["costUsd"], result["modelNormalized"], result["spooled"]

        deadline = time.monotonic() + 5
        while True:  # the batch is settled off the answer's path: a repeat meanwhile is answered 202 too
            again = httpx.post(f"{gateway}/v1/ingest/llm-requests", json={"events": events}, headers=headers).json()
            if all(r["duplicate"] for r in again["results"]) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [r["httpStatus"] for r in again["results"]] == [202] * 3
        assert [r["duplicate"] for r in again["results"]] == [True] * 3
        assert [part(r) for r in again["results"]] == [part(r) for r in first["results"]]
        single = httpx.post(f"{gateway}/v1/ingest/llm-request", json=events[1], headers=headers).json()
        assert (single["duplicate"], part(single)) == (True, part(first["results"][1]))
        status = httpx.get(f"{gateway}/v1/diagnostics/workspace-status", headers=headers).json()
        assert status["plan"]["currentRequestCount"] == 3


class TestBatch:
    def test_a_batch_answers_207_with_one_result_per_event(self, stack: RunningStack) -> None:
        ws = create(stack, plan="starter")
        wait_for_plan(stack, ws, "starter")
        first = body()
        events = [first, body(status="nope"), first, body(model="gpt-4o")]
        answer = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-requests",
            json={"events": events},
            headers={"X-API-Key": ws["apiKey"]},
        )
        assert answer.status_code == 207
        results = answer.json()["results"]
        assert [r["httpStatus"] for r in results] == [202, 422, 202, 202]
        assert [r["index"] for r in results] == [0, 1, 2, 3]
        assert all(set(r) >= STATUS_FIELDS for r in results)
        assert all(r["providerCallsContinue"] is True for r in results)
        assert results[0]["status"] == "accepted"
        assert results[0]["reason"] is None
        assert (results[0]["costUsd"], results[0]["modelNormalized"]) == ("0.00022", "gpt-4o-mini")
        assert results[1]["errors"][0]["field"] == "status"
        assert results[2]["duplicate"] is True
        assert results[2]["eventId"] == results[0]["eventId"]
        assert answer.headers["X-RateLimit-Remaining"] == str(300 - 4)

    def test_rate_limits_count_each_event_of_a_batch(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=5)
        wait_for_plan(stack, ws, "enterprise")
        wait_for_fresh_window(10)
        answer = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-requests",
            json={"events": [body() for _ in range(7)]},
            headers={"X-API-Key": ws["apiKey"]},
        )
        assert [r["httpStatus"] for r in answer.json()["results"]] == [202] * 5 + [429] * 2
        assert "Retry-After" in answer.headers

    @pytest.mark.parametrize(
        "payload", [{"events": []}, {"events": [{}] * 501}, {"events": "x"}, {"events": [], "more": 1}]
    )
    def test_bad_batches_are_422(self, stack: RunningStack, payload: dict[str, Any]) -> None:
        ws = create(stack, plan="starter")
        answer = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-requests", json=payload, headers={"X-API-Key": ws["apiKey"]}
        )
        assert answer.status_code == 422
        assert answer.json()["reason"] == "invalid_payload"


class TestRejectionsInTheUsageReport:
    """SPEC §5: rejections are counted by reason and visible in usage reports; none is silent."""

    def test_refused_events_show_in_the_usage_answer_by_reason(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise", rateLimitPerMinute=4)
        wait_for_plan(stack, ws, "enterprise")
        wait_for_fresh_window(10)
        url, key = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request", {"X-API-Key": ws["apiKey"]}
        statuses = [
            httpx.post(url, json=body(), headers=key).status_code,
            httpx.post(url, json=body(outputTokens=-1), headers=key).status_code,
            httpx.post(url, content=b"{not json", headers={**key, "Content-Type": "application/json"}).status_code,
            httpx.post(url, json=body(), headers=key).status_code,
            httpx.post(url, json=body(), headers=key).status_code,
        ]
        batch = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-requests", json={"events": [body(), body()]}, headers=key
        )
        assert statuses == [202, 422, 400, 202, 429]
        assert [r["httpStatus"] for r in batch.json()["results"]] == [429, 429]
        expected = {"total": 5, "rateLimited": 3, "invalidPayload": 2, "planLimitReached": 0, "budgetExceeded": 0}
        deadline = time.monotonic() + 10
        while (counted := usage(stack, ws).json()["rejections"]) != expected:
            assert time.monotonic() < deadline, f"the usage answer shows {counted}, not {expected}"
            time.sleep(0.2)
        other = create(stack, plan="starter")
        assert usage(stack, other).json()["rejections"]["total"] == 0, "each workspace sees its own"


class TestWorkspaceStatus:
    def test_the_status_has_the_full_shape(self, stack: RunningStack) -> None:
        ws = create(stack, plan="pro")
        wait_for_plan(stack, ws, "pro")
        httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-request", json=body(), headers={"X-API-Key": ws["apiKey"]}
        )
        status = httpx.get(
            f"{stack.url('ingest-gateway')}/v1/diagnostics/workspace-status", headers={"X-API-Key": ws["apiKey"]}
        ).json()
        assert status["workspaceId"] == ws["workspaceId"]
        assert status["providerCallsContinue"] is True
        for key in ("isPlanLimitReached", "telemetryPaused", "isBudgetWarning", "isBudgetExceeded", "severity"):
            assert key in status
        plan = status["plan"]
        assert (plan["planTier"], plan["planName"], plan["planRequestLimit"]) == ("pro", "Pro", 1_000_000)
        assert (plan["currentRequestCount"], plan["remainingRequestCount"]) == (1, 999_999)
        assert plan["periodStart"].endswith("-01T00:00:00Z")
        assert {"warningThresholdRatio", "daily", "monthly"} <= set(status["budget"])


class TestApiKeys:
    def test_create_list_rotate_and_revoke(self, stack: RunningStack) -> None:
        ws = create(stack, plan="starter")
        base = f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/api-keys"
        admin = {"Authorization": f"Bearer {ws['adminToken']}"}
        ingest_url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"

        created = httpx.post(base, json={"name": "ci", "mode": "test"}, headers=admin)
        assert created.status_code == 201
        key = created.json()["apiKey"]
        assert key.startswith("om_test_")
        assert httpx.post(ingest_url, json=body(), headers={"X-API-Key": key}).status_code == 202

        listed = httpx.get(base, headers=admin).json()["apiKeys"]
        assert len(listed) == 2
        assert all(key not in str(item) for item in listed)
        mine = next(k for k in listed if k["apiKeyId"] == created.json()["apiKeyId"])
        assert (mine["name"], mine["revoked"], mine["prefix"]) == ("ci", False, key.rsplit("_", 1)[0])
        assert mine["lastUsedAt"] is not None

        rotated = httpx.post(f"{base}/{mine['apiKeyId']}/rotate", headers=admin)
        assert rotated.status_code == 201
        new_key = rotated.json()["apiKey"]
        assert httpx.post(ingest_url, json=body(), headers={"X-API-Key": new_key}).status_code == 202

        deadline = time.monotonic() + 10
        while httpx.post(ingest_url, json=body(), headers={"X-API-Key": key}).status_code != 401:
            assert time.monotonic() < deadline, "a rotated key kept working for more than 10 s"
            time.sleep(0.2)

        revoked = httpx.delete(f"{base}/{rotated.json()['apiKeyId']}", headers=admin)
        assert revoked.status_code == 204
        deadline = time.monotonic() + 10
        while httpx.post(ingest_url, json=body(), headers={"X-API-Key": new_key}).status_code != 401:
            assert time.monotonic() < deadline, "a revoked key kept working for more than 10 s"
            time.sleep(0.2)

    def test_keys_are_managed_only_by_their_workspace_admins(self, stack: RunningStack) -> None:
        ws, other = create(stack, plan="starter"), create(stack, plan="starter")
        base = f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/api-keys"
        assert httpx.get(base, headers={"Authorization": f"Bearer {other['adminToken']}"}).status_code == 404
        assert httpx.post(base, headers={"Authorization": f"Bearer {ws['apiKey']}"}).status_code == 401
        other_key = httpx.get(
            f"{stack.url('ingest-gateway')}/v1/workspaces/{other['workspaceId']}/api-keys",
            headers={"Authorization": f"Bearer {other['adminToken']}"},
        ).json()["apiKeys"][0]["apiKeyId"]
        stolen = httpx.delete(f"{base}/{other_key}", headers={"Authorization": f"Bearer {ws['adminToken']}"})
        assert stolen.status_code == 404


class TestPlanChanges:
    def test_enterprise_without_a_policy_has_the_team_rate_not_the_free_one(self, stack: RunningStack) -> None:
        ws = create(stack, plan="enterprise")
        wait_for_plan(stack, ws, "enterprise")
        answer = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-request", json=body(), headers={"X-API-Key": ws["apiKey"]}
        )
        assert answer.status_code == 202
        assert answer.headers["X-RateLimit-Limit"] == "3000"

    def test_set_plan_reaches_the_rate_limit_within_10_s_without_a_restart(self, stack: RunningStack) -> None:
        ws = create(stack, plan="free")
        wait_for_plan(stack, ws, "free")
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"
        assert httpx.post(url, json=body(), headers={"X-API-Key": ws["apiKey"]}).headers["X-RateLimit-Limit"] == "120"
        changed = httpx.put(
            f"{stack.url('ingest-gateway')}/v1/admin/workspaces/{ws['workspaceId']}/plan",
            json={"plan": "pro"},
            headers={"X-Operator-Token": operator_token(stack.config)},
        )
        assert changed.status_code == 202
        started = time.monotonic()
        while httpx.post(url, json=body(), headers={"X-API-Key": ws["apiKey"]}).headers["X-RateLimit-Limit"] != "600":
            assert time.monotonic() - started < 10, "the new plan's rate limit did not apply within 10 s"
            time.sleep(0.1)
        status = httpx.get(
            f"{stack.url('ingest-gateway')}/v1/diagnostics/workspace-status", headers={"X-API-Key": ws["apiKey"]}
        ).json()
        assert (status["plan"]["planTier"], status["plan"]["planRequestLimit"]) == ("pro", 1_000_000)


class TestDataHygiene:
    def usage(self, stack: RunningStack, ws: dict[str, Any], data_mode: str) -> int:
        answer = httpx.get(
            f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/usage",
            params={"dataMode": data_mode},
            headers={"Authorization": f"Bearer {ws['adminToken']}"},
        )
        requests: int = answer.json()["totals"]["requests"]
        return requests

    def eventually(self, check: Any, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"not within {timeout}s"
            time.sleep(0.2)

    def test_demo_and_test_data_are_removed_and_real_data_stays(self, stack: RunningStack) -> None:
        ws = create(stack, plan="team")
        gateway = stack.url("ingest-gateway")
        key = {"X-API-Key": ws["apiKey"]}
        admin = {"Authorization": f"Bearer {ws['adminToken']}"}
        assert httpx.post(f"{gateway}/v1/ingest/demo", json={"events": 50, "days": 3}, headers=key).status_code == 202
        for mode in ("test", "real"):
            assert (
                httpx.post(f"{gateway}/v1/ingest/llm-request", json=body(dataMode=mode), headers=key).status_code == 202
            )
        self.eventually(lambda: (self.usage(stack, ws, "demo"), self.usage(stack, ws, "test")) == (50, 1))

        removed = httpx.delete(f"{gateway}/v1/ingest/demo-data", params={"scope": "workspace"}, headers=admin)
        assert removed.status_code == 202
        self.eventually(lambda: self.usage(stack, ws, "demo") == 0)
        mine = httpx.delete(f"{gateway}/v1/ingest/test-data", params={"scope": "mine"}, headers=admin)
        assert mine.status_code == 202
        assert mine.json()["apiKeyIds"]
        self.eventually(lambda: self.usage(stack, ws, "test") == 0)
        assert self.usage(stack, ws, "real") == 1

    def test_hygiene_needs_an_admin_token(self, stack: RunningStack) -> None:
        ws = create(stack, plan="team")
        gateway = stack.url("ingest-gateway")
        assert httpx.delete(f"{gateway}/v1/ingest/demo-data", headers={"X-API-Key": ws["apiKey"]}).status_code == 401
