"""Rejection counts against the real local Redis: written about once a second, read back by hour and reason,
kept while Redis refuses them."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from opsmeter_ingest.adapters.rejections import BufferedRejectionLog
from opsmeter_runtime.rejections import RETENTION_DAYS, add_rejections, read_rejections, rejections_key
from opsmeter_runtime.testing import Engines

HOUR = datetime(2026, 12, 7, 23, tzinfo=UTC)


@pytest.fixture
async def redis(engines: Engines) -> AsyncIterator[Redis]:
    client = Redis.from_url(engines.redis_url)
    yield client
    await client.aclose()


async def test_a_window_counts_the_hours_that_start_in_it_half_open(redis: Redis, unique: str) -> None:
    ws = f"ws_{unique}"
    next_hour = HOUR + timedelta(hours=1)  # the next UTC day
    await add_rejections(
        redis,
        {
            (ws, HOUR - timedelta(hours=1)): {"invalid_payload": 1},
            (ws, HOUR): {"rate_limited": 5, "invalid_payload": 2},
            (ws, next_hour): {"plan_limit_reached": 3, "budget_exceeded": 4},
        },
    )
    assert await read_rejections(redis, ws, HOUR, next_hour + timedelta(hours=1)) == {
        "rate_limited": 5,
        "invalid_payload": 2,
        "plan_limit_reached": 3,
        "budget_exceeded": 4,
    }
    only_this_hour = await read_rejections(redis, ws, HOUR + timedelta(minutes=30), next_hour)
    assert only_this_hour == {"rate_limited": 5, "invalid_payload": 2, "plan_limit_reached": 0, "budget_exceeded": 0}
    assert sum((await read_rejections(redis, f"ws_other{unique}", HOUR, next_hour)).values()) == 0
    assert 0 < await redis.ttl(rejections_key(ws, HOUR.date())) <= RETENTION_DAYS * 86_400


async def test_counts_are_written_at_the_flush_and_kept_while_redis_refuses(redis: Redis, unique: str) -> None:
    ws = f"ws_{unique}"
    now = datetime.now(UTC)
    log = BufferedRejectionLog(redis)
    log.count(ws, {"rate_limited": 2})
    log.count(ws, {"rate_limited": 1, "invalid_payload": 1})
    assert sum((await read_rejections(redis, ws, now, now + timedelta(hours=1))).values()) == 0, "not before"
    await log.flush()
    counted = await read_rejections(redis, ws, now, now + timedelta(hours=1))
    assert (counted["rate_limited"], counted["invalid_payload"]) == (3, 1)

    gone = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens there
    away = BufferedRejectionLog(gone)
    away.count(ws, {"budget_exceeded": 2})
    await away.flush()  # refused: kept for the next flush, not raised
    away.count(ws, {"budget_exceeded": 1})
    assert away.pending_events == 3
    await gone.aclose()
