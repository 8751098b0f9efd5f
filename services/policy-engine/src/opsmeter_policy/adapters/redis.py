"""The policy engine's Redis state: spend counters, current settings, emitted-decision marks.

Spend: the dedupe mark and every increment of one event are one atomic script, so a redelivered event
or a consumer killed mid-batch never counts twice and never half-counts.
"""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from uuid import UUID

from redis.asyncio import Redis, RedisCluster

from opsmeter_contracts.policy import PolicySettingsPayload
from opsmeter_policy.domain import KEEP_AFTER_WINDOW, Crossing, Increment, SpendWindow, spend_counter
from opsmeter_runtime.errors import TransientError
from opsmeter_runtime.redis import run_script_many, workspace_tag

_ADD_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  for i = 2, #KEYS do
    redis.call('INCRBY', KEYS[i], ARGV[2 * i - 2])
    redis.call('EXPIREAT', KEYS[i], ARGV[2 * i - 1])
  end
  return 1
end
return 0
"""

_APPLY_SETTINGS = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if stored >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'settings', ARGV[2])
return 1
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

SEEN_TTL = timedelta(days=40)
PREFIX = "opsmeter:policy"


def counter_key(workspace_id: str, counter: str) -> str:
    return f"{PREFIX}:spend:{workspace_tag(workspace_id)}:{counter}"


def seen_key(workspace_id: str, event_id: UUID) -> str:
    return f"{PREFIX}:seen:{workspace_tag(workspace_id)}:{event_id}"


class RedisSpendLedger:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_ADD_ONCE)

    def _call(self, workspace_id: str, event_id: UUID, increments: Sequence[Increment]) -> tuple[list[str], list[int]]:
        keys = [seen_key(workspace_id, event_id), *(counter_key(workspace_id, i.counter) for i in increments)]
        args = [int(SEEN_TTL.total_seconds())]
        for increment in increments:
            args += [increment.amount, int(increment.expires_at.timestamp())]
        return keys, args

    async def add(self, workspace_id: str, event_id: UUID, increments: Sequence[Increment]) -> bool:
        keys, args = self._call(workspace_id, event_id, increments)
        return bool(await self._script(keys=keys, args=args))

    async def add_many(self, items: Sequence[tuple[str, UUID, Sequence[Increment]]]) -> list[bool]:
        if not items:
            return []
        calls = [self._call(workspace_id, event_id, increments) for workspace_id, event_id, increments in items]
        return [bool(r) for r in await run_script_many(self._redis, self._script, calls)]

    async def totals(self, workspace_id: str, counters: Sequence[str]) -> dict[str, int]:
        if not counters:
            return {}
        values = await self._redis.mget([counter_key(workspace_id, c) for c in counters])
        return {c: int(v or 0) for c, v in zip(counters, values, strict=True)}

    async def totals_many(self, wanted: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
        workspaces = [ws for ws, counters in wanted.items() if counters]
        # One MGET per workspace: its counters share a slot, other workspaces' may not (Redis Cluster, where
        # redis-py refuses MGET in a pipeline: there they go out concurrently).
        gets = [[counter_key(ws, c) for c in wanted[ws]] for ws in workspaces]
        if isinstance(self._redis, RedisCluster):
            replies = list(await asyncio.gather(*(self._redis.mget(keys) for keys in gets)))
        else:
            pipe = self._redis.pipeline(transaction=False)
            for keys in gets:
                pipe.mget(keys)
            replies = await pipe.execute() if gets else []
        result: dict[str, dict[str, int]] = {ws: {} for ws in wanted}
        for ws, values in zip(workspaces, replies, strict=True):
            result[ws] = {c: int(v or 0) for c, v in zip(wanted[ws], values, strict=True)}
        return result

    async def spend(self, workspace_id: str, window: SpendWindow) -> int:
        return (await self.totals(workspace_id, [spend_counter(window)]))[spend_counter(window)]


class RedisSettingsStore:
    """Current settings per workspace (a snapshot and its version), so they survive a local broker restart."""

    def __init__(self, redis: Redis, *, lock_timeout_s: float = 10.0) -> None:
        self._redis = redis
        self._apply = redis.register_script(_APPLY_SETTINGS)
        self._release = redis.register_script(_RELEASE_LOCK)
        self._lock_timeout_s = lock_timeout_s

    @staticmethod
    def _key(workspace_id: str) -> str:
        return f"{PREFIX}:settings:{workspace_tag(workspace_id)}"

    _tracked = f"{PREFIX}:workspaces"

    async def get(self, workspace_id: str) -> PolicySettingsPayload | None:
        raw = await self._redis.hget(self._key(workspace_id), "settings")
        return None if raw is None else PolicySettingsPayload.model_validate_json(raw)

    async def get_many(self, workspace_ids: Sequence[str]) -> dict[str, PolicySettingsPayload | None]:
        pipe = self._redis.pipeline(transaction=False)
        for ws in workspace_ids:
            pipe.hget(self._key(ws), "settings")
        raws = await pipe.execute()
        return {
            ws: None if raw is None else PolicySettingsPayload.model_validate_json(raw)
            for ws, raw in zip(workspace_ids, raws, strict=True)
        }

    async def apply(self, workspace_id: str, settings: PolicySettingsPayload) -> bool:
        applied = bool(
            await self._apply(keys=[self._key(workspace_id)], args=[settings.version, settings.model_dump_json()])
        )
        # The set of all workspaces has a slot of its own (Redis Cluster): added after the snapshot, every time,
        # so a crash between the two is mended by the redelivery.
        await self._redis.sadd(self._tracked, workspace_id)
        return applied

    @contextlib.asynccontextmanager
    async def locked(self, workspace_id: str) -> AsyncIterator[None]:
        key, token = f"{PREFIX}:settings-lock:{workspace_tag(workspace_id)}", secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_timeout_s
        while not await self._redis.set(key, token, nx=True, px=int(self._lock_timeout_s * 1000)):
            if loop.time() > deadline:
                raise TransientError(f"settings of {workspace_id} are locked by another change")
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            await self._release(keys=[key], args=[token])

    async def workspaces(self) -> list[str]:
        members = await self._redis.smembers(self._tracked)
        return sorted(m.decode() if isinstance(m, bytes) else m for m in members)

    async def track(self, workspace_ids: Sequence[str]) -> None:
        if workspace_ids:
            await self._redis.sadd(self._tracked, *workspace_ids)


class RedisDecisionMarks:
    """Which crossings already produced their decision, per workspace and period; unit-cost rule states."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @staticmethod
    def _key(workspace_id: str, period: SpendWindow) -> str:
        return f"{PREFIX}:crossed:{workspace_tag(workspace_id)}:{period.name}"

    async def unmarked(self, crossings: Sequence[tuple[str, Crossing]]) -> list[tuple[str, Crossing]]:
        if not crossings:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for ws, c in crossings:
            pipe.sismember(self._key(ws, c.period), c.mark)
        found = await pipe.execute()
        return [item for item, marked in zip(crossings, found, strict=True) if not marked]

    async def mark(self, crossings: Sequence[tuple[str, Crossing]]) -> None:
        if not crossings:
            return
        pipe = self._redis.pipeline(transaction=False)
        for ws, c in crossings:
            key = self._key(ws, c.period)
            pipe.sadd(key, c.mark)
            pipe.expireat(key, int((c.period.end + KEEP_AFTER_WINDOW).timestamp()))
        await pipe.execute()

    async def unit_cost_state(self, workspace_id: str, rule_id: str) -> tuple[bool, int]:
        breached, episodes = await self._redis.hmget(
            f"{PREFIX}:unit-cost:{workspace_tag(workspace_id)}", [f"{rule_id}:breached", f"{rule_id}:episodes"]
        )
        return breached == b"1", int(episodes or 0)

    async def set_unit_cost_state(self, workspace_id: str, rule_id: str, breached: bool, episodes: int) -> None:
        await self._redis.hset(
            f"{PREFIX}:unit-cost:{workspace_tag(workspace_id)}",
            mapping={f"{rule_id}:breached": int(breached), f"{rule_id}:episodes": episodes},
        )
