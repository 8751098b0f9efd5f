"""Spend per workspace and window in Redis; the dedupe mark and the increments are one atomic script."""

from datetime import timedelta
from uuid import UUID

from redis.asyncio import Redis

from opsmeter_policy.domain import SpendWindow

_ADD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  for i = 2, #KEYS do
    redis.call('INCRBY', KEYS[i], ARGV[1])
    redis.call('EXPIREAT', KEYS[i], ARGV[i + 1])
  end
  return 1
end
return 0
"""

SEEN_TTL = timedelta(days=40)
KEEP_AFTER_WINDOW = timedelta(days=35)


def spend_key(workspace_id: str, window: SpendWindow) -> str:
    return f"opsmeter:policy:spend:{workspace_id}:{window.name}"


class RedisSpendLedger:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_ADD_ONCE)

    async def add(self, workspace_id: str, event_id: UUID, cost_micro_usd: int, windows: list[SpendWindow]) -> bool:
        keys = [f"opsmeter:policy:seen:{event_id}", *(spend_key(workspace_id, w) for w in windows)]
        expiries = [int((w.end + KEEP_AFTER_WINDOW).timestamp()) for w in windows]
        added = await self._script(keys=keys, args=[cost_micro_usd, int(SEEN_TTL.total_seconds()), *expiries])
        return bool(added)

    async def spend(self, workspace_id: str, window: SpendWindow) -> int:
        value = await self._redis.get(spend_key(workspace_id, window))
        return int(value or 0)
