"""The plan projection the gateway reads: ``opsmeter:plan:<workspace>``."""

from typing import cast

from redis.asyncio import Redis

from opsmeter_billing.domain import PlanLimits
from opsmeter_contracts.events import Plan
from opsmeter_runtime.redis import decode_hash


def plan_key(workspace_id: str) -> str:
    return f"opsmeter:plan:{workspace_id}"


class RedisPlanProjection:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def save(self, workspace_id: str, plan: Plan, limits: PlanLimits) -> None:
        await self._redis.hset(
            plan_key(workspace_id),
            mapping={
                "plan": plan,
                "rate_limit_per_minute": "" if limits.rate_limit_per_minute is None else limits.rate_limit_per_minute,
                "monthly_request_quota": "" if limits.monthly_request_quota is None else limits.monthly_request_quota,
            },
        )

    async def get(self, workspace_id: str) -> tuple[Plan, PlanLimits] | None:
        record = decode_hash(await self._redis.hgetall(plan_key(workspace_id)))
        if not record:
            return None
        limits = PlanLimits(
            int(record["rate_limit_per_minute"]) if record["rate_limit_per_minute"] else None,
            int(record["monthly_request_quota"]) if record["monthly_request_quota"] else None,
        )
        return cast(Plan, record["plan"]), limits
