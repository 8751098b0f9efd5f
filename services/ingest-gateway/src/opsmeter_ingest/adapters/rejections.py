"""Rejections counted in memory and written to Redis about once a second (``opsmeter_runtime.rejections``).

A flood of refused requests (a client looping past its rate limit) then costs Redis one pipeline per second per
gateway process instead of one write per request. What a crash loses is at most the last second's counts; the
answers themselves told each client what happened.
"""

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.rejections import RejectionReason, add_rejections, hour_of

log = get_logger(__name__)

MAX_PENDING = 10_000
"""(workspace, hour) entries kept while Redis is away; beyond them new ones are dropped (and logged)."""


class BufferedRejectionLog:
    def __init__(self, redis: Redis, *, interval_s: float = 1.0) -> None:
        self._redis = redis
        self._interval_s = interval_s
        self._pending: dict[tuple[str, datetime], dict[RejectionReason, int]] = {}
        self.dropped = 0

    @property
    def pending_events(self) -> int:
        """Rejections counted here and not yet written."""
        return sum(sum(reasons.values()) for reasons in self._pending.values())

    def count(self, workspace_id: str, reasons: Mapping[RejectionReason, int]) -> None:
        self._add((workspace_id, hour_of(datetime.now(UTC))), reasons)

    def _add(self, where: tuple[str, datetime], reasons: Mapping[RejectionReason, int]) -> None:
        counts = self._pending.get(where)
        if counts is None:
            if len(self._pending) >= MAX_PENDING:
                self.dropped += sum(reasons.values())
                return
            counts = self._pending[where] = {}
        for reason, n in reasons.items():
            counts[reason] = counts.get(reason, 0) + n

    async def flush(self) -> None:
        """Write what was counted since the last flush; on failure keep it for the next one."""
        pending, self._pending = self._pending, {}
        try:
            await add_rejections(self._redis, pending)
        except (RedisError, OSError) as exc:
            for where, reasons in pending.items():
                self._add(where, reasons)
            log.warning("rejection_counts_not_written", error=str(exc), kept=len(self._pending))
        if self.dropped:
            log.warning("rejection_counts_dropped", events=self.dropped)
            self.dropped = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.flush()
