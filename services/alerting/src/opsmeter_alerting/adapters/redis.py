"""Alerting's state in Redis: settings, alerts and their deliveries, the delivery queue, dead letters, slots.

Recording an alert is one Lua script: the guard (event id, summary slot), the cooldown and the queued
deliveries are written together or not at all, so a redelivered decision or a second scheduler run
records nothing twice and a crash leaves nothing half-done.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from redis.asyncio import Redis

from opsmeter_alerting.domain import AlertSettings

# One hash tag for all of alerting (ADR 0059): its scripts join the shared delivery queue with per-alert keys.
_P = "opsmeter:{alerting}"
QUEUE_KEY = f"{_P}:queue"
OPEN_CONDITIONS_KEY = f"{_P}:open"
SCHEDULED_KEY = f"{_P}:scheduled"
NO_COOLDOWN_KEY = f"{_P}:no-cooldown"
"""Stands in the record script's cooldown slot when there is none (with a cooldown of 0 s it is never written):
a key of alerting's own slot, where an empty name would hash to another (Redis Cluster)."""
RETENTION_S = 90 * 86_400


def settings_key(workspace_id: str) -> str:
    return f"{_P}:settings:{workspace_id}"


def alert_key(alert_id: str) -> str:
    return f"{_P}:alert:{alert_id}"


def delivery_key(delivery_id: str) -> str:
    return f"{_P}:delivery:{delivery_id}"


def alerts_index_key(workspace_id: str) -> str:
    return f"{_P}:alerts:{workspace_id}"


def dead_letters_key(workspace_id: str) -> str:
    return f"{_P}:dead:{workspace_id}"


def guard_key(guard: str) -> str:
    return f"{_P}:guard:{guard}"


def cooldown_key(workspace_id: str, rule: str, scope: str) -> str:
    return f"{_P}:cooldown:{workspace_id}:{rule}:{scope}"


def failures_key(workspace_id: str, channel_id: str) -> str:
    return f"{_P}:failures:{workspace_id}:{channel_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ts(at: datetime) -> float:
    return at.timestamp()


# KEYS: guard, alert, index, queue, cooldown (NO_COOLDOWN_KEY for none), then one key per delivery.
# ARGV: alert id, alert json, suppressed alert json, created ts, retention s, cooldown s, due ts,
#       then (delivery id, delivery json) per delivery. Returns 0 (seen before), 1 (recorded), 2 (suppressed).
_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
local suppressed = false
if KEYS[5] ~= '' and tonumber(ARGV[6]) > 0 then
  local held = redis.call('SET', KEYS[5], ARGV[1], 'NX', 'EX', ARGV[6])
  if not held and redis.call('GET', KEYS[5]) ~= ARGV[1] then suppressed = true end
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
if suppressed then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[5])
  return 2
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[5])
for i = 6, #KEYS do
  redis.call('SET', KEYS[i], ARGV[8 + (i - 6) * 2 + 1], 'EX', ARGV[5])
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[8 + (i - 6) * 2])
end
return 1
"""

# KEYS: queue. ARGV: now ts, lease-until ts, limit. Claims due deliveries by pushing them past the lease.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"""


@dataclass(frozen=True)
class StoredSettings:
    settings: AlertSettings
    enabled_at: datetime
    """When the workspace first saved settings: its first summary covers only the time since."""


class Sealer:
    """Encrypts a workspace's alert settings at rest (their channel URLs and secrets): Fernet, from
    ``OPSMETER_SECRETS_KEY``. Several keys (comma-separated, newest first) let a key be rotated."""

    def __init__(self, keys: str) -> None:
        self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])

    def seal(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def open(self, stored: bytes) -> bytes:
        """The plain record; one stored before encryption (a JSON object) is read as it is."""
        if stored.startswith(b"{"):
            return stored
        try:
            return self._fernet.decrypt(stored)
        except InvalidToken:
            raise RuntimeError("alert settings sealed with a key not in OPSMETER_SECRETS_KEY") from None


class RedisAlertSettingsStore:
    def __init__(self, redis: Redis, sealer: Sealer) -> None:
        self._redis = redis
        self._sealer = sealer

    async def get(self, workspace_id: str) -> StoredSettings | None:
        raw = await self._redis.get(settings_key(workspace_id))
        if raw is None:
            return None
        record = json.loads(self._sealer.open(raw if isinstance(raw, bytes) else raw.encode()))
        return StoredSettings(
            settings=AlertSettings.model_validate(record["settings"]),
            enabled_at=datetime.fromisoformat(record["enabledAt"]),
        )

    async def save(self, workspace_id: str, settings: AlertSettings, *, now: datetime) -> StoredSettings:
        previous = await self.get(workspace_id)
        stored = StoredSettings(settings=settings, enabled_at=previous.enabled_at if previous else now)
        record = {"settings": settings.model_dump(mode="json"), "enabledAt": stored.enabled_at.isoformat()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(settings_key(workspace_id), self._sealer.seal(json.dumps(record).encode()))
            if settings.summary_kinds:
                pipe.sadd(SCHEDULED_KEY, workspace_id)
            else:
                pipe.srem(SCHEDULED_KEY, workspace_id)
            await pipe.execute()
        return stored

    async def scheduled_workspaces(self) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m for m in await self._redis.smembers(SCHEDULED_KEY))


class RedisAlertStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._record = redis.register_script(_RECORD)
        self._claim = redis.register_script(_CLAIM)

    async def record(
        self,
        alert: dict[str, Any],
        deliveries: list[dict[str, Any]],
        *,
        guard: str,
        cooldown: tuple[str, int] | None,
        due: datetime,
    ) -> int:
        """Record an alert and queue its deliveries once per guard: 0 seen before, 1 recorded, 2 suppressed."""
        suppressed = {**alert, "status": "suppressed", "deliveries": []}
        keys = [
            guard_key(guard),
            alert_key(alert["alertId"]),
            alerts_index_key(alert["workspaceId"]),
            QUEUE_KEY,
            cooldown[0] if cooldown else NO_COOLDOWN_KEY,
            *(delivery_key(d["deliveryId"]) for d in deliveries),
        ]
        args: list[Any] = [
            alert["alertId"],
            json.dumps(alert),
            json.dumps(suppressed),
            _ts(datetime.fromisoformat(alert["createdAt"])),
            RETENTION_S,
            cooldown[1] if cooldown else 0,
            _ts(due),
        ]
        for d in deliveries:
            args += [d["deliveryId"], json.dumps(d)]
        return int(await self._record(keys=keys, args=args))

    async def clear_cooldown(self, workspace_id: str, rule: str, scope: str) -> None:
        await self._redis.delete(cooldown_key(workspace_id, rule, scope))

    async def alert(self, alert_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(alert_key(alert_id))
        return json.loads(raw) if raw else None

    async def delivery(self, delivery_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(delivery_key(delivery_id))
        return json.loads(raw) if raw else None

    async def save_delivery(self, delivery: dict[str, Any]) -> None:
        await self._redis.set(delivery_key(delivery["deliveryId"]), json.dumps(delivery), ex=RETENTION_S)

    async def alert_ids(
        self, workspace_id: str, *, since: datetime | None = None, until: datetime | None = None, limit: int = 100
    ) -> list[str]:
        """Newest first."""
        raw = await self._redis.zrevrangebyscore(
            alerts_index_key(workspace_id),
            _ts(until) if until else "+inf",
            _ts(since) if since else "-inf",
            start=0,
            num=limit,
        )
        return [_text(m) for m in raw]

    async def claim_due(self, now: datetime, lease_s: float, limit: int = 50) -> list[str]:
        raw = await self._claim(keys=[QUEUE_KEY], args=[_ts(now), _ts(now) + lease_s, limit])
        return [_text(m) for m in raw]

    async def reschedule(self, delivery_id: str, at: datetime) -> None:
        await self._redis.zadd(QUEUE_KEY, {delivery_id: _ts(at)})

    async def finish(self, delivery: dict[str, Any], *, dead: bool) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(delivery_key(delivery["deliveryId"]), json.dumps(delivery), ex=RETENTION_S)
            pipe.zrem(QUEUE_KEY, delivery["deliveryId"])
            if dead:
                pipe.zadd(
                    dead_letters_key(delivery["workspaceId"]), {delivery["deliveryId"]: datetime.now(UTC).timestamp()}
                )
            await pipe.execute()

    async def dead_letters(self, workspace_id: str) -> list[str]:
        raw = await self._redis.zrange(dead_letters_key(workspace_id), 0, -1)
        return [_text(m) for m in raw]

    async def requeue(self, delivery: dict[str, Any], at: datetime) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(delivery_key(delivery["deliveryId"]), json.dumps(delivery), ex=RETENTION_S)
            pipe.zrem(dead_letters_key(delivery["workspaceId"]), delivery["deliveryId"])
            pipe.zadd(QUEUE_KEY, {delivery["deliveryId"]: _ts(at)})
            await pipe.execute()

    async def count_failure(self, workspace_id: str, channel_id: str) -> int:
        return int(await self._redis.incr(failures_key(workspace_id, channel_id)))

    async def reset_failures(self, workspace_id: str, channel_id: str) -> None:
        await self._redis.delete(failures_key(workspace_id, channel_id))

    async def open_condition(self, condition: dict[str, Any], clears_at: datetime) -> None:
        await self._redis.zadd(OPEN_CONDITIONS_KEY, {json.dumps(condition, sort_keys=True): _ts(clears_at)})

    async def cleared_conditions(self, now: datetime) -> list[dict[str, Any]]:
        raw = await self._redis.zrangebyscore(OPEN_CONDITIONS_KEY, "-inf", _ts(now))
        return [json.loads(_text(m)) for m in raw]

    async def close_condition(self, condition: dict[str, Any]) -> None:
        await self._redis.zrem(OPEN_CONDITIONS_KEY, json.dumps(condition, sort_keys=True))
