"""A Redis stall never holds ingest (issue 20, finding 4): every answer comes from the degraded path within
the admission deadline instead of waiting for Redis, warm keys keep working, and no answer is a 5xx."""

import asyncio
import os
import signal
import time
import uuid
from typing import Any

import httpx
from redis import Redis

from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack

STALL_S = 15.0


def test_a_15_s_redis_stall_is_answered_without_waiting(stack: RunningStack) -> None:
    workspace = stack.create_workspace("pro")
    redis_pid = int(Redis.from_url(stack.engines.redis_url).info("server")["process_id"])
    answers = asyncio.run(_ingest_through_a_stall(stack.url("ingest-gateway"), workspace, redis_pid))
    statuses = {status for status, _ in answers}
    slowest = max(took for _, took in answers)
    assert len(answers) >= 5 * STALL_S
    assert statuses <= {202, 429}, statuses
    assert 202 in statuses
    assert slowest < 1.0, f"an answer waited {slowest:.2f} s for Redis"


async def _ingest_through_a_stall(url: str, workspace: dict[str, Any], redis_pid: int) -> list[tuple[int, float]]:
    answers: list[tuple[int, float]] = []
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": workspace["apiKey"]}, timeout=30) as client:

        async def one() -> tuple[int, float]:
            body = {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}"}
            started = time.monotonic()
            answer = await client.post("/v1/ingest/llm-request", json=body)
            return answer.status_code, time.monotonic() - started

        for _ in range(5):  # the key is warm, the workspace's limits known
            assert (await one())[0] == 202
        os.kill(redis_pid, signal.SIGSTOP)
        tasks: list[asyncio.Task[tuple[int, float]]] = []
        try:
            started = time.monotonic()
            while time.monotonic() - started < STALL_S:
                tasks.append(asyncio.create_task(one()))
                await asyncio.sleep(0.1)
            answers = await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
        finally:
            os.kill(redis_pid, signal.SIGCONT)
    return answers
