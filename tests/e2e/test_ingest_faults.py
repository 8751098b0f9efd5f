"""Faults never lose an accepted event: a stalled broker spools, a dead Redis fails open.

These tests stall and kill the engines, so they run on a stack of their own.
"""

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmeter_cli.chaos import SCENARIOS, Size, exercise, fault_hooks, supervised
from opsmeter_cli.stack import Stack, StackConfig, operator_token
from opsmeter_runtime.localstack import port_open, redis_process, wait_for
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY, selected_backend


def _stack(tmp_path_factory: pytest.TempPathFactory, **env: str) -> Iterator[Stack]:
    if selected_backend() != "local":
        pytest.skip("fault tests stall and kill the local engine processes; they run in the local mode")
    data_dir = tmp_path_factory.mktemp("faults")
    stack = Stack(StackConfig.on_free_ports(data_dir, {**fault_hooks(data_dir), **env}))
    stack.start(timeout=180)
    try:
        yield stack
    finally:
        for process in stack.processes.values():
            if process.pid:
                os.kill(process.pid, signal.SIGCONT)
        stack.stop()


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _stack(tmp_path_factory)


SMALL_SPOOL_BYTES = 20_000
"""About twenty events."""


@pytest.fixture(scope="module")
def small_spool_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _stack(tmp_path_factory, OPSMETER_INGEST_GATEWAY_SPOOL_MAX_BYTES=str(SMALL_SPOOL_BYTES))


def workspace(stack: Stack) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.config.url('ingest-gateway')}/v1/admin/workspaces",
        json={"name": "faults", "plan": "enterprise", "rateLimitPerMinute": 100_000, "monthlyRequestQuota": 1_000_000},
        headers={"X-Operator-Token": operator_token(stack.config)},
        timeout=30,
    )
    assert answer.status_code == 201
    created: dict[str, Any] = answer.json()
    return created


def send(stack: Stack, ws: dict[str, Any], **overrides: Any) -> httpx.Response:
    body = {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}", **overrides}
    return httpx.post(
        f"{stack.config.url('ingest-gateway')}/v1/ingest/llm-request",
        json=body,
        headers={"X-API-Key": ws["apiKey"]},
        timeout=10,
    )


def usage_requests(stack: Stack, ws: dict[str, Any]) -> int:
    answer = httpx.get(
        f"{stack.config.url('reporting')}/v1/workspaces/{ws['workspaceId']}/usage",
        headers={"Authorization": f"Bearer {ws['adminToken']}"},
        timeout=10,
    )
    if answer.status_code != 200:
        return -1
    requests: int = answer.json()["totals"]["requests"]
    return requests


def eventually(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s"
        time.sleep(0.2)


class TestBrokerStalled:
    def test_every_202_is_counted_once_after_the_broker_returns(self, own_stack: Stack) -> None:
        ws = workspace(own_stack)
        accepted = [send(own_stack, ws) for _ in range(20)]
        broker = own_stack.processes["broker"]
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            during = [send(own_stack, ws) for _ in range(30)]
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        assert {a.status_code for a in during} == {202}
        assert all(a.json()["spooled"] for a in during)
        after = [send(own_stack, ws) for _ in range(10)]
        assert {a.status_code for a in [*accepted, *after]} == {202}
        eventually(lambda: usage_requests(own_stack, ws) == 60, timeout=60)
        metrics = httpx.get(f"{own_stack.config.url('ingest-gateway')}/metrics").text
        assert "opsmeter_spool_events 0.0" in metrics
        spooled = float(metrics.split("\nopsmeter_spooled_events_total ")[1].split()[0])
        assert spooled >= 30  # the 30 sent while the broker was stopped, at least


class TestSpoolFull:
    def test_503_with_retry_after_then_refused_at_once_until_the_broker_drains_it(
        self, small_spool_stack: Stack
    ) -> None:
        stack = small_spool_stack
        ws = workspace(stack)
        assert send(stack, ws).status_code == 202
        broker = stack.processes["broker"]
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            answers: list[httpx.Response] = []
            while len(answers) < 60 and (not answers or answers[-1].status_code == 202):
                answers.append(send(stack, ws))
            refused_at_once = send(stack, ws)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        spooled, full = answers[:-1], answers[-1]
        assert 5 <= len(spooled) <= SMALL_SPOOL_BYTES // 500  # each ~1 kB as stored
        assert all(a.json()["spooled"] for a in spooled)
        # The event that found the spool full: validated and admitted, then refused, never a 2xx.
        assert full.status_code == 503
        assert full.json()["reason"] == "unavailable"
        assert full.headers["Retry-After"] == "5"
        assert "X-RateLimit-Remaining" in full.headers
        # The next one of the same workspace is refused before any work on it: it would have to queue
        # behind the spooled events, and the spool takes nothing until a quarter of it is free again.
        assert refused_at_once.status_code == 503
        assert refused_at_once.headers["Retry-After"] == "5"
        assert "spool is full" in refused_at_once.json()["message"]
        # Not admitted, not counted: the rate limit as the last admission left it.
        assert refused_at_once.headers["X-RateLimit-Remaining"] == full.headers["X-RateLimit-Remaining"]
        metrics = httpx.get(f"{stack.config.url('ingest-gateway')}/metrics").text
        assert 'opsmeter_ingest_rejected_requests_total{reason="unavailable",status="503"} 1.0' in metrics
        # The broker back: the spool drains, the workspace is taken again, and every 202 counts once.
        eventually(lambda: send(stack, ws).status_code == 202, timeout=30)
        accepted = 1 + len(spooled) + 1
        eventually(lambda: usage_requests(stack, ws) == accepted, timeout=60)
        time.sleep(1)
        assert usage_requests(stack, ws) == accepted


DEGRADED_TOTAL = "opsmeter_degraded_decisions_total "


class TestRedisDown:
    def test_ingest_keeps_answering_and_quotas_are_reconciled(self, own_stack: Stack) -> None:
        ws = workspace(own_stack)
        assert send(own_stack, ws).status_code == 202
        redis = own_stack.processes["redis"]
        redis.stop(10)
        try:
            started = time.monotonic()
            degraded = [send(own_stack, ws) for _ in range(5)]
            elapsed = time.monotonic() - started
        finally:
            config = own_stack.config
            restarted = redis_process(
                config.redis_port, config.data_dir / "redis", config.data_dir / "logs" / "redis.log"
            )
            own_stack.processes["redis"] = restarted.start()
            wait_for(lambda: port_open(config.redis_port), timeout=30, what="redis again", process=restarted)
        assert [a.status_code for a in degraded] == [202] * 5
        assert elapsed < 5 * 1.0
        eventually(lambda: send(own_stack, ws).status_code == 202, timeout=15)

        def counted() -> bool:
            status = httpx.get(
                f"{own_stack.config.url('ingest-gateway')}/v1/diagnostics/workspace-status",
                headers={"X-API-Key": ws["apiKey"]},
            ).json()
            return bool(status["plan"]["currentRequestCount"] == 7)

        eventually(counted, timeout=15)
        metrics = httpx.get(f"{own_stack.config.url('ingest-gateway')}/metrics").text
        # The five sent while Redis was down, and any sent in the half second before the next probe (ADR 55).
        [decided_here] = [float(line.split()[1]) for line in metrics.splitlines() if line.startswith(DEGRADED_TOTAL)]
        assert decided_here >= 5
        eventually(lambda: usage_requests(own_stack, ws) == 7, timeout=30)


def plan_requests(stack: Stack, ws: dict[str, Any]) -> int:
    status = httpx.get(
        f"{stack.config.url('ingest-gateway')}/v1/diagnostics/workspace-status",
        headers={"X-API-Key": ws["apiKey"]},
        timeout=10,
    ).json()
    count: int = status["plan"]["currentRequestCount"]
    return count


class TestSpoolUnwritable:
    def test_an_unconfirmed_503_keeps_its_key_so_a_retry_learns_it_was_taken(self, own_stack: Stack) -> None:
        ws = workspace(own_stack)
        [spool_dir] = [d for d in (own_stack.config.data_dir / "spool").iterdir() if d.is_dir()]
        aside = spool_dir.with_name(f"{spool_dir.name}.aside")
        broker = own_stack.processes["broker"]
        assert broker.pid is not None
        retried = {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}"}
        spool_dir.rename(aside)
        spool_dir.write_text("no spool here\n")  # nothing can be written there, even as root
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            first = post(own_stack, ws, retried)
            never_retried = send(own_stack, ws)
        finally:
            spool_dir.unlink()
            aside.rename(spool_dir)
            os.kill(broker.pid, signal.SIGCONT)
        for answer in (first, never_retried):
            assert answer.status_code == 503
            assert answer.json()["reason"] == "unavailable"
            assert "not confirmed" in answer.json()["message"]
            assert answer.headers["Retry-After"] == "5"
        # The producer held both and delivered them once the broker was back: the retry is told so, and
        # /usage and the plan counter agree, whether or not the client ever retried.
        retries = [post(own_stack, ws, retried)]
        while retries[-1].status_code == 503 and len(retries) < 30:  # in flight: asked to retry
            time.sleep(1)
            retries.append(post(own_stack, ws, retried))
        assert retries[-1].status_code == 202
        assert retries[-1].json()["duplicate"] is True  # not taken anew: the first was taken after all
        eventually(lambda: usage_requests(own_stack, ws) == 2, timeout=30)
        assert plan_requests(own_stack, ws) == 2
        time.sleep(1)
        assert usage_requests(own_stack, ws) == 2


def post(stack: Stack, ws: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{stack.config.url('ingest-gateway')}/v1/ingest/llm-request",
        json=body,
        headers={"X-API-Key": ws["apiKey"]},
        timeout=10,
    )


class TestChaosScenarios:
    """The short form of ``make chaos``'s cheapest scenarios, on this module's stack: loadgen's oracle exact."""

    @pytest.mark.parametrize("name", ["broker-stalled", "redis-killed", "clickhouse-inserts-failing"])
    def test_every_accepted_event_counted_once_through_the_fault(self, own_stack: Stack, name: str) -> None:
        with supervised(own_stack):
            outcome = asyncio.run(exercise(own_stack, Size(rate=40, duration_s=8, stall_s=3), scenario=SCENARIOS[name]))
        assert outcome.problems == []
        assert (outcome.lost, outcome.double_counted) == (0, 0)
        assert outcome.accepted >= 300  # 320 sent, one in 20 a repeat
        assert set(outcome.by_status) == {202}
        assert outcome.recover_s is not None

    def test_through_an_unwritable_spool_every_503_retried_counts_once(self, own_stack: Stack) -> None:
        scenario = SCENARIOS["spool-unwritable"]
        with supervised(own_stack):
            outcome = asyncio.run(exercise(own_stack, Size(rate=40, duration_s=8, stall_s=3), scenario=scenario))
        assert outcome.problems == []
        assert (outcome.lost, outcome.double_counted, outcome.refused_counted) == (0, 0, 0)
        assert outcome.by_status.get(503, 0) > 0  # the fault took hold: answers were not confirmed
        assert outcome.landed_after_503 > 0  # and their retries learnt that the broker took them after all
