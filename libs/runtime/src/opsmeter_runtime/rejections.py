"""Refused ingest events per workspace, by reason and UTC hour (SPEC §5: "Rejections are counted by reason and
visible in usage reports; none is silent"). The gateway adds to them; reporting reads them for the usage answer.

One hash per workspace and UTC day, ``opsmeter:rejections:{ws}:YYYY-MM-DD``, fields ``HH:reason`` → count, each
kept ``RETENTION_DAYS``. Only refusals of a known workspace are counted: a request with no valid key (401) or a
body too large to read (413) names none.
"""

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Literal, get_args

from redis.asyncio import Redis

from opsmeter_runtime.redis import workspace_tag

RejectionReason = Literal["rate_limited", "invalid_payload", "plan_limit_reached", "budget_exceeded"]
REASONS: tuple[RejectionReason, ...] = get_args(RejectionReason)
RETENTION_DAYS = 400
"""Longer than any plan's raw-event window, so a usage answer's rejections never end before its events do."""
_BY_NAME: dict[str, RejectionReason] = {reason: reason for reason in REASONS}

HourCounts = Mapping[tuple[str, datetime], Mapping[RejectionReason, int]]
"""Counts per (workspace, the UTC hour they fell in)."""


def rejections_key(workspace_id: str, day: date) -> str:
    return f"opsmeter:rejections:{workspace_tag(workspace_id)}:{day.isoformat()}"


def hour_of(moment: datetime) -> datetime:
    """The UTC hour ``moment`` falls in (its start)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def add_rejections(redis: Redis, counts: HourCounts) -> None:
    """Add ``counts`` in one round trip (a pipeline of increments, each day's hash kept ``RETENTION_DAYS``)."""
    if not counts:
        return
    keys: set[str] = set()
    async with redis.pipeline(transaction=False) as pipe:
        for (workspace_id, hour), reasons in counts.items():
            key = rejections_key(workspace_id, hour.date())
            keys.add(key)
            for reason, n in reasons.items():
                if n:
                    pipe.hincrby(key, f"{hour.hour:02d}:{reason}", n)
        for key in keys:
            pipe.expire(key, RETENTION_DAYS * 86_400)
        await pipe.execute()


async def read_rejections(
    redis: Redis, workspace_id: str, start: datetime, end: datetime
) -> dict[RejectionReason, int]:
    """The workspace's rejections by reason in the hours that start in [hour_of(start), end): to the hour."""
    first, days = hour_of(start), []
    day = first.date()
    while datetime.combine(day, datetime.min.time(), UTC) < end:
        days.append(day)
        day += timedelta(days=1)
    totals: dict[RejectionReason, int] = dict.fromkeys(REASONS, 0)
    if not days:
        return totals
    async with redis.pipeline(transaction=False) as pipe:
        for day in days:
            pipe.hgetall(rejections_key(workspace_id, day))
        hashes: list[dict[bytes, bytes]] = await pipe.execute()
    for day, fields in zip(days, hashes, strict=True):
        for field, value in fields.items():
            hour_text, _, name = field.decode().partition(":")
            reason = _BY_NAME.get(name)
            hour = datetime.combine(day, datetime.min.time(), UTC).replace(hour=int(hour_text))
            if reason is not None and first <= hour < end:
                totals[reason] += int(value)
    return totals
