"""Billing's state in Redis: one hash per workspace account, subscription owners, delivery marks, idempotency.

- ``opsmeter:{billing}:account:<ws>`` — the account (plan, subscription, pending change)
- ``opsmeter:{billing}:subscription:<id>`` — the workspace a Lemon Squeezy subscription belongs to
- ``opsmeter:{billing}:due`` — sorted set of workspaces to reconcile: score 0 = now, else the renewal time
  (until Lemon Squeezy was asked after it)
- ``opsmeter:{billing}:verified`` — sorted set of every workspace with a subscription: score = when Lemon Squeezy
  was last asked about it (0 = never), so periodic verification reads the oldest first
- ``opsmeter:{billing}:reconcile-lease`` — the replica running a reconciliation now (SET NX PX)
- ``opsmeter:{billing}:delivery:<sha256>`` — a webhook delivery already applied
- ``opsmeter:{billing}:idempotency:<ws>:<sha256(key)>`` — change-plan answers by ``Idempotency-Key``
"""

import hashlib
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from opsmeter_billing.adapters import Decide, StoredReply
from opsmeter_billing.domain import BillingAccount, PendingChange
from opsmeter_contracts.events import Plan
from opsmeter_runtime.redis import decode_hash

T = TypeVar("T")

# One hash tag for all of billing (ADR 0059): an account changes in one transaction with the shared due set.
_P = "opsmeter:{billing}"
DUE_KEY = f"{_P}:due"
VERIFIED_KEY = f"{_P}:verified"
LEASE_KEY = f"{_P}:reconcile-lease"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
DELIVERY_TTL = timedelta(days=7)
IDEMPOTENCY_TTL = timedelta(hours=24)
IN_PROGRESS_TTL = timedelta(minutes=2)


def account_key(workspace_id: str) -> str:
    return f"{_P}:account:{workspace_id}"


def owner_key(subscription_id: str) -> str:
    return f"{_P}:subscription:{subscription_id}"


class RedisAccountStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, workspace_id: str) -> BillingAccount | None:
        return decode_account(workspace_id, decode_hash(await self._redis.hgetall(account_key(workspace_id))))

    async def update(self, workspace_id: str, decide: Decide[T]) -> T:
        key = account_key(workspace_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    current = decode_account(workspace_id, decode_hash(await pipe.hgetall(key)))
                    new, result = decide(current)
                    if new is None or new == current:
                        await pipe.reset()  # type: ignore[no-untyped-call]
                        return result
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.delete(key)
                    pipe.hset(key, mapping=encode_account(new))  # type: ignore[arg-type]
                    for index, score in ((DUE_KEY, due_score(new)), (VERIFIED_KEY, verified_score(new))):
                        if score is None:
                            pipe.zrem(index, workspace_id)
                        else:
                            pipe.zadd(index, {workspace_id: score})
                    await pipe.execute()
                    return result
                except WatchError:
                    continue

    async def owner_of(self, subscription_id: str) -> str | None:
        value = await self._redis.get(owner_key(subscription_id))
        return value.decode() if isinstance(value, bytes) else value

    async def claim(self, subscription_id: str, workspace_id: str) -> str:
        await self._redis.set(owner_key(subscription_id), workspace_id, nx=True)
        owner = await self.owner_of(subscription_id)
        return owner or workspace_id

    async def delivery_seen(self, delivery_id: str) -> bool:
        return bool(await self._redis.exists(f"{_P}:delivery:{delivery_id}"))

    async def mark_delivery(self, delivery_id: str) -> None:
        await self._redis.set(f"{_P}:delivery:{delivery_id}", "1", ex=DELIVERY_TTL)

    async def due_for_reconciliation(self, renewed_before_epoch: float, limit: int) -> list[str]:
        members = await self._redis.zrangebyscore(DUE_KEY, 0, renewed_before_epoch, start=0, num=limit)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def least_recently_verified(self, checked_before_epoch: float, limit: int) -> list[str]:
        members = await self._redis.zrangebyscore(VERIFIED_KEY, "-inf", checked_before_epoch, start=0, num=limit)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def count_unverified(self, checked_before_epoch: float) -> int:
        return int(await self._redis.zcount(VERIFIED_KEY, "-inf", checked_before_epoch))

    async def index_linked_accounts(self) -> int:
        """Put every account with a subscription in the verification index (those written before it existed)."""
        added = 0
        async for key in self._redis.scan_iter(match=account_key("*"), count=1000):
            name = _text(key)
            if await self._redis.hexists(name, "subscription_id"):
                workspace_id = name.removeprefix(account_key(""))
                added += 1 if await self._redis.zadd(VERIFIED_KEY, {workspace_id: 0}, nx=True) else 0
        return added

    async def acquire_reconciliation(self, token: str, ttl_s: float) -> bool:
        return bool(await self._redis.set(LEASE_KEY, token, nx=True, px=int(ttl_s * 1000)))

    async def release_reconciliation(self, token: str) -> None:
        await self._redis.eval(_RELEASE, 1, LEASE_KEY, token)


def due_score(account: BillingAccount) -> float | None:
    """0 for a pending change or a fresh link; the renewal date until Lemon Squeezy was asked after it."""
    if account.subscription_id is None:
        return None
    if account.pending is not None or account.needs_poll:
        return 0.0
    renews_at, verified_at = account.renews_at, account.verified_at
    if renews_at is None or (verified_at is not None and verified_at >= renews_at):
        return None
    return renews_at.timestamp()


def verified_score(account: BillingAccount) -> float | None:
    if account.subscription_id is None:
        return None
    return account.verified_at.timestamp() if account.verified_at is not None else 0.0


def encode_account(account: BillingAccount) -> dict[str, str]:
    pending = account.pending
    fields: dict[str, object] = {
        "plan": account.plan,
        "rate_limit_override": account.rate_limit_override,
        "quota_override": account.quota_override,
        "subscription_id": account.subscription_id,
        "variant_id": account.variant_id,
        "status": account.status,
        "renews_at": account.renews_at,
        "ends_at": account.ends_at,
        "updated_at": account.updated_at,
        "portal_url": account.portal_url,
        "test_mode": "1" if account.test_mode else "0",
        "pending_plan": pending.plan if pending else None,
        "pending_variant_id": pending.variant_id if pending else None,
        "pending_requested_at": pending.requested_at if pending else None,
        "projected_plan": account.projected_plan,
        "needs_poll": "1" if account.needs_poll else "0",
        "verified_at": account.verified_at,
    }
    return {
        name: value.isoformat() if isinstance(value, datetime) else str(value)
        for name, value in fields.items()
        if value is not None
    }


def decode_account(workspace_id: str, record: dict[str, str]) -> BillingAccount | None:
    if "plan" not in record:
        return None
    pending = None
    if "pending_plan" in record:
        pending = PendingChange(
            plan=cast(Plan, record["pending_plan"]),
            variant_id=int(record["pending_variant_id"]),
            requested_at=datetime.fromisoformat(record["pending_requested_at"]),
        )
    return BillingAccount(
        workspace_id=workspace_id,
        plan=cast(Plan, record["plan"]),
        rate_limit_override=_int(record.get("rate_limit_override")),
        quota_override=_int(record.get("quota_override")),
        subscription_id=record.get("subscription_id"),
        variant_id=_int(record.get("variant_id")),
        status=record.get("status"),
        renews_at=_time(record.get("renews_at")),
        ends_at=_time(record.get("ends_at")),
        updated_at=_time(record.get("updated_at")),
        portal_url=record.get("portal_url"),
        test_mode=record.get("test_mode") == "1",
        pending=pending,
        projected_plan=cast(Plan | None, record.get("projected_plan")),
        needs_poll=record.get("needs_poll") == "1",
        verified_at=_time(record.get("verified_at")),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(text: str | None) -> int | None:
    return int(text) if text else None


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class RedisIdempotencyStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @staticmethod
    def _key(workspace_id: str, key: str) -> str:
        return f"{_P}:idempotency:{workspace_id}:{hashlib.sha256(key.encode()).hexdigest()}"

    async def begin(self, workspace_id: str, key: str, fingerprint: str) -> StoredReply | str | None:
        redis_key = self._key(workspace_id, key)
        marker = orjson.dumps({"fingerprint": fingerprint, "state": "in_progress"})
        if await self._redis.set(redis_key, marker, nx=True, ex=IN_PROGRESS_TTL):
            return None
        raw = await self._redis.get(redis_key)
        if raw is None:
            return "in_progress"
        stored: dict[str, Any] = orjson.loads(raw)
        if stored.get("fingerprint") != fingerprint:
            return "key_reused"
        if stored.get("state") == "in_progress":
            return "in_progress"
        return StoredReply(int(stored["status_code"]), stored["body"])

    async def finish(self, workspace_id: str, key: str, fingerprint: str, reply: StoredReply) -> None:
        value = {"fingerprint": fingerprint, "state": "done", "status_code": reply.status_code, "body": reply.body}
        await self._redis.set(self._key(workspace_id, key), orjson.dumps(value), ex=IDEMPOTENCY_TTL)

    async def abandon(self, workspace_id: str, key: str) -> None:
        await self._redis.delete(self._key(workspace_id, key))
