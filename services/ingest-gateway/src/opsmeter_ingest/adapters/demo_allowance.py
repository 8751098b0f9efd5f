"""How many demo events a workspace may load per UTC day: one atomic Redis counter per workspace and day."""

from datetime import date

from redis.asyncio import Redis

from opsmeter_runtime.redis import workspace_tag

_TAKE = """
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
"""KEYS[1] the workspace's counter of the day; ARGV: the events asked for, the daily allowance, the key's TTL."""

KEY_TTL_S = 2 * 24 * 3600


def demo_key(workspace_id: str, day: date) -> str:
    return f"opsmeter:demo:{workspace_tag(workspace_id)}:{day.isoformat()}"


class DemoAllowance:
    """``POST /v1/ingest/demo`` writes up to 20,000 events per call, outside every plan quota (demo data never
    counts): this caps what one workspace can write that way per UTC day (ADR 65)."""

    def __init__(self, redis: Redis, *, events_per_day: int) -> None:
        self._take = redis.register_script(_TAKE)
        self.events_per_day = events_per_day

    async def take(self, workspace_id: str, events: int, day: date) -> bool:
        """Whether ``events`` more demo events fit in the workspace's allowance of ``day`` (then they are taken)."""
        keys = [demo_key(workspace_id, day)]
        return bool(await self._take(keys=keys, args=[events, self.events_per_day, KEY_TTL_S]))
