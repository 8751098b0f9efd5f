"""The Python SDK against the real local stack: batching, exactly-once delivery, 429 waits, the 402 pause."""

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from opsmeter import Opsmeter, WorkspaceFlags
from opsmeter_cli.stack import operator_token
from tests.conftest import RunningStack


def workspace(stack: RunningStack, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/admin/workspaces",
        json={"name": "sdk", **fields},
        headers={"X-Operator-Token": operator_token(stack.config)},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    stack.wait_for_plan(created, fields.get("plan", "starter"))
    return created


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s (last: {result!r})")
        time.sleep(0.2)


def usage_requests(stack: RunningStack, ws: dict[str, Any]) -> int:
    answer = httpx.get(
        f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/usage",
        headers={"Authorization": f"Bearer {ws['adminToken']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["totals"]["requests"])


def record_one(om: Opsmeter, n: int) -> str | None:
    return om.record(
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=812,
        output_tokens=164,
        endpoint_tag="checkout.ai_summary",
        user_id=f"u_{n % 7}",
        latency_ms=930,
    )


@pytest.fixture
def client_factory(stack: RunningStack) -> Iterator[Callable[..., Opsmeter]]:
    made: list[Opsmeter] = []

    def make(api_key: str, **options: Any) -> Opsmeter:
        om = Opsmeter(api_key, base_url=stack.url("ingest-gateway"), **options)
        made.append(om)
        return om

    yield make
    for om in made:
        om.shutdown(timeout=1)


class TestDelivery:
    def test_ten_thousand_records_return_at_once_and_arrive_exactly_once(
        self, stack: RunningStack, client_factory: Callable[..., Opsmeter]
    ) -> None:
        ws = workspace(stack, plan="enterprise", rateLimitPerMinute=1_000_000, monthlyRequestQuota=1_000_000)
        om = client_factory(ws["apiKey"])
        started = time.perf_counter()
        ids = [record_one(om, n) for n in range(10_000)]
        took = time.perf_counter() - started
        # Loose on purpose, not a speed figure (a shared 2-core host under test load took 1.65 s once): it catches
        # a record() that sends on the caller's thread, since 10,000 requests to the gateway one by one take
        # well over 10 s here.
        assert took < 10.0, f"10,000 record() calls took {took:.2f}s: record() waits for the network"
        assert None not in ids
        assert len(set(ids)) == 10_000
        assert om.flush(timeout=120), om.stats()
        stats = om.stats()
        assert stats.accepted + stats.duplicates == 10_000, stats
        assert stats.dropped == {}, stats
        assert stats.batches >= 20  # at most 500 per batch
        assert eventually(lambda: usage_requests(stack, ws) == 10_000, timeout=60)
        time.sleep(1)
        assert usage_requests(stack, ws) == 10_000

    def test_an_unreachable_or_silent_gateway_never_raises_or_blocks(self) -> None:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        try:
            for url in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{silent.getsockname()[1]}"):
                om = Opsmeter("om_live_abc_def", base_url=url, max_retries=1, backoff_base=0.05)
                started = time.perf_counter()
                for n in range(1000):
                    record_one(om, n)
                assert time.perf_counter() - started < 0.5
                assert om.flush(timeout=10)
                stats = om.stats()
                assert stats.accepted == 0
                assert stats.dropped == {"network_error": 1000}, stats
                om.shutdown(timeout=1)
                assert record_one(om, 0) is None  # after shutdown: dropped, not raised
        finally:
            silent.close()

    def test_a_free_workspace_past_its_rate_limit_gets_everything_after_retry_after(
        self, stack: RunningStack, client_factory: Callable[..., Opsmeter]
    ) -> None:
        ws = workspace(stack, plan="free")
        om = client_factory(ws["apiKey"])
        for n in range(160):
            record_one(om, n)
        assert om.flush(timeout=150), om.stats()
        stats = om.stats()
        assert stats.accepted == 160, stats
        assert stats.retries >= 1  # it was throttled and waited
        assert stats.dropped == {}
        assert eventually(lambda: usage_requests(stack, ws) == 160, timeout=60)

    def test_a_quota_pauses_telemetry_and_calls_on_plan_limit_once(
        self, stack: RunningStack, client_factory: Callable[..., Opsmeter]
    ) -> None:
        ws = workspace(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=50)
        seen: list[WorkspaceFlags] = []
        om = client_factory(ws["apiKey"], on_plan_limit=seen.append)
        for n in range(80):
            record_one(om, n)
        assert om.flush(timeout=30)
        for n in range(40):  # paused now: dropped at once, never sent
            record_one(om, n)
        assert om.flush(timeout=30)
        stats = om.stats()
        assert stats.accepted == 50, stats
        assert stats.dropped == {"plan_limit_reached": 70}, stats
        assert stats.sent == 80
        assert len(seen) == 1
        assert seen[0].plan_limit_reached
        assert seen[0].telemetry_paused
        assert om.flags.plan_limit_reached

    def test_the_pause_lifts_when_the_status_says_telemetry_is_back(
        self, stack: RunningStack, client_factory: Callable[..., Opsmeter]
    ) -> None:
        ws = workspace(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=5)
        seen: list[WorkspaceFlags] = []
        om = client_factory(ws["apiKey"], on_plan_limit=seen.append, status_check_interval=0.5)
        for n in range(10):
            record_one(om, n)
        assert om.flush(timeout=30)
        assert om.flags.telemetry_paused
        answer = httpx.put(
            f"{stack.url('ingest-gateway')}/v1/admin/workspaces/{ws['workspaceId']}/plan",
            json={"plan": "enterprise", "rateLimitPerMinute": 100_000, "monthlyRequestQuota": 1000},
            headers={"X-Operator-Token": operator_token(stack.config)},
            timeout=30,
        )
        assert answer.status_code in (200, 202), answer.text
        eventually(lambda: not om.flags.telemetry_paused, timeout=30)
        assert [f.plan_limit_reached for f in seen] == [True, False]
        for n in range(10):
            record_one(om, n)
        assert om.flush(timeout=30)
        assert om.stats().accepted == 15

    def test_invalid_records_are_dropped_and_logged_once_with_the_field(
        self, stack: RunningStack, client_factory: Callable[..., Opsmeter], caplog: pytest.LogCaptureFixture
    ) -> None:
        ws = workspace(stack, plan="team")
        om = client_factory(ws["apiKey"])
        for _ in range(3):
            om.record(provider="openai", model="gpt-4o-mini", input_tokens=-5, output_tokens=1)
        record_one(om, 1)
        assert om.flush(timeout=30)
        stats = om.stats()
        assert stats.accepted == 1
        assert stats.dropped == {"invalid_payload": 3}
        logged = [r.getMessage() for r in caplog.records if r.name == "opsmeter"]
        assert len([m for m in logged if "inputTokens" in m]) == 1, logged

    def test_a_repeated_external_request_id_counts_once(
        self, stack: RunningStack, client_factory: Callable[..., Opsmeter]
    ) -> None:
        ws = workspace(stack, plan="team")
        om = client_factory(ws["apiKey"])
        for _ in range(2):
            om.record(
                provider="openai", model="gpt-4o-mini", input_tokens=1, output_tokens=1, external_request_id="same-1"
            )
            assert om.flush(timeout=30)
        assert (om.stats().accepted, om.stats().duplicates) == (1, 1)
