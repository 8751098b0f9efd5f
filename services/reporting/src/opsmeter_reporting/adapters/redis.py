"""Redis adapters: the plan projection billing writes (plan gates, retention), the gateway's rejection counts and
spike detection state."""

import time
from datetime import datetime

from redis.asyncio import Redis

from opsmeter_reporting.domain import RETENTION, Retention
from opsmeter_runtime.money import CostBasis, parse_cost_basis
from opsmeter_runtime.projections import PlanProjection, PlanTier, policy_status_key
from opsmeter_runtime.redis import workspace_tag
from opsmeter_runtime.rejections import RejectionReason, read_rejections


class RedisPlanReader:
    """The workspace's plan from billing's projection; a workspace without one is on Free.

    Cached for ``ttl_s`` so the sink does not read Redis per batch; a plan change shows within it.
    """

    def __init__(self, redis: Redis, *, enterprise: Retention = RETENTION["enterprise"], ttl_s: float = 30.0) -> None:
        self._plans = PlanProjection(redis)
        self._enterprise = enterprise
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, PlanTier]] = {}

    async def plan(self, workspace_id: str, *, fresh: bool = False) -> PlanTier:
        cached = self._cache.get(workspace_id)
        if cached and cached[0] > time.monotonic() and not fresh:
            return cached[1]
        record = await self._plans.get(workspace_id)
        plan: PlanTier = record.plan if record else "free"
        self._cache[workspace_id] = (time.monotonic() + self._ttl_s, plan)
        return plan

    async def retention(self, workspace_id: str) -> Retention:
        plan = await self.plan(workspace_id)
        return self._enterprise if plan == "enterprise" else RETENTION[plan]


SPIKE_JOB_KEY = "opsmeter:reporting:spike-job"


class RedisCostBasisReader:
    """The workspace's cost basis from the policy engine's status projection (ADR 57), read per sink batch."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def cost_basis(self, workspace_id: str) -> CostBasis:
        stored = await self._redis.hget(policy_status_key(workspace_id), "cost_basis")
        text = stored.decode() if isinstance(stored, bytes) else (stored or "")
        return parse_cost_basis(text)


def spike_key(workspace_id: str) -> str:
    return f"opsmeter:reporting:spike:{workspace_tag(workspace_id)}"


class RedisRejections:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def rejections(self, workspace_id: str, start: datetime, end: datetime) -> dict[RejectionReason, int]:
        return await read_rejections(self._redis, workspace_id, start, end)


class RedisSpikeState:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def active(self, workspace_id: str) -> bool:
        return bool(await self._redis.exists(spike_key(workspace_id)))

    async def set_active(self, workspace_id: str, active: bool) -> None:
        if active:
            await self._redis.set(spike_key(workspace_id), "1")
        else:
            await self._redis.delete(spike_key(workspace_id))

    async def take_turn(self, interval_s: float) -> bool:
        """Whether this replica runs the spike job this interval: the first to ask holds it for 90 % of one
        (ADR 0059), so replicas scaled out by the HPA never check and emit the same spike side by side."""
        return bool(await self._redis.set(SPIKE_JOB_KEY, "1", nx=True, px=max(1, int(interval_s * 900))))
