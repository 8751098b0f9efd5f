"""The gateway scales by processes: two workers share the port, or two gateways listen on two ports (as two pods
behind a Service), each with its own spool, and every limit stays exact across them (they count in the same
Redis)."""

import asyncio
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmeter_cli.stack import Stack, http_ready, operator_token
from opsmeter_runtime.localstack import ManagedProcess, free_port, wait_for
from tests.e2e.test_ingest_faults import _stack
from tests.e2e.test_ingest_governance import body, post_many, wait_for_fresh_window


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A generous admission deadline: this test is about limits across processes, not about a slow Redis. With the
    # default 100 ms a CPU-starved host once left one reply late; that request was decided in-process (ADR 55:
    # still exact in count, but its X-RateLimit-Remaining came from the worker's last known window).
    yield from _stack(
        tmp_path_factory, OPSMETER_INGEST_GATEWAY_WORKERS="2", OPSMETER_INGEST_GATEWAY_ADMISSION_TIMEOUT_S="2"
    )


def free_workspace(stack: Stack) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.config.url('ingest-gateway')}/v1/admin/workspaces",
        json={"name": "workers", "plan": "free"},
        headers={"X-Operator-Token": operator_token(stack.config)},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        plan = httpx.get(
            f"{stack.config.url('billing')}/v1/workspaces/{created['workspaceId']}/plan",
            headers={"Authorization": f"Bearer {created['adminToken']}"},
        )
        if plan.status_code == 200 and plan.json()["planTier"] == "free":
            return created
        time.sleep(0.05)
    raise AssertionError("billing did not project the free plan")


def scraped_events(stack: Stack) -> dict[str, float]:
    """``opsmeter_ingest_events_total`` by status from one scrape of ``/metrics`` (a new connection: any worker)."""
    text = httpx.get(f"{stack.config.url('ingest-gateway')}/metrics", headers={"Connection": "close"}).text
    found = re.findall(r'^opsmeter_ingest_events_total\{(?=[^}]*status="(\d+)")[^}]*\} (\S+)$', text, re.MULTILINE)
    totals: dict[str, float] = {}
    for status, value in found:
        totals[status] = totals.get(status, 0) + float(value)
    return totals


def test_two_workers_accept_exactly_120_per_minute_on_free_then_429(two_workers: Stack) -> None:
    spools = two_workers.config.data_dir / "spool"
    deadline = time.monotonic() + 60  # the stack is ready once one worker answers; the other may still start
    while len(list(spools.glob("*.lock"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list(spools.glob("*.lock"))) == 2  # two processes, each holding a spool of its own
    ws = free_workspace(two_workers)
    wait_for_fresh_window()
    before = scraped_events(two_workers)
    url = f"{two_workers.config.url('ingest-gateway')}/v1/ingest/llm-request"
    answers = asyncio.run(post_many(url, ws["apiKey"], [body() for _ in range(130)], clients=8))
    statuses = [a.status_code for a in answers]
    assert statuses.count(202) == 120
    assert statuses.count(429) == 10
    remaining = sorted(int(a.headers["X-RateLimit-Remaining"]) for a in answers if a.status_code == 202)
    assert remaining == list(range(120))
    for _ in range(6):  # every scrape counts both workers' answers, whichever worker it reaches
        after = scraped_events(two_workers)
        assert (after.get("202", 0) - before.get("202", 0), after.get("429", 0) - before.get("429", 0)) == (120, 10)


def test_two_gateways_on_two_ports_share_the_limits_exactly(two_workers: Stack) -> None:
    port = free_port()
    second = ManagedProcess(
        name="second-gateway",
        argv=[sys.executable, "-c", "from opsmeter_ingest.main import run; run()"],
        log_path=two_workers.config.data_dir / "logs" / "second-gateway.log",
        env={
            **two_workers.service_env(),
            "OPSMETER_INGEST_GATEWAY_PORT": str(port),
            "OPSMETER_INGEST_GATEWAY_WORKERS": "1",
            "OPSMETER_INGEST_GATEWAY_INSTANCE": "second-gateway",
        },
    ).start()
    try:
        wait_for(lambda: http_ready(f"http://127.0.0.1:{port}"), timeout=90, what="the second gateway", process=second)
        ws = free_workspace(two_workers)
        wait_for_fresh_window()
        first_url = f"{two_workers.config.url('ingest-gateway')}/v1/ingest/llm-request"
        second_url = f"http://127.0.0.1:{port}/v1/ingest/llm-request"

        async def both() -> list[httpx.Response]:
            halves = await asyncio.gather(
                post_many(first_url, ws["apiKey"], [body() for _ in range(65)], clients=4),
                post_many(second_url, ws["apiKey"], [body() for _ in range(65)], clients=4),
            )
            return [*halves[0], *halves[1]]

        answers = asyncio.run(both())
        statuses = [a.status_code for a in answers]
        assert statuses.count(202) == 120
        assert statuses.count(429) == 10
        remaining = sorted(int(a.headers["X-RateLimit-Remaining"]) for a in answers if a.status_code == 202)
        assert remaining == list(range(120))
        assert {a.url.port for a in answers if a.status_code == 202} == {
            two_workers.config.service_ports["ingest-gateway"],
            port,
        }
    finally:
        second.stop()
