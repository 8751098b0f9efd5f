"""Redis projections shared across services: one writer each, read by the gateway on every ingest.

- ``opsmeter:plan:<ws>`` — the workspace's plan and limits; written by billing.
- ``opsmeter:policy:status:<ws>`` — budget flags, enforcement and kill switch; written by the policy engine.
"""

from dataclasses import dataclass
from typing import Literal, cast

from redis.asyncio import Redis

from opsmeter_runtime.redis import decode_hash

PlanTier = Literal["free", "starter", "pro", "team", "enterprise"]
Enforcement = Literal["advisory", "hard_stop"]


def plan_key(workspace_id: str) -> str:
    return f"opsmeter:plan:{workspace_id}"


def policy_status_key(workspace_id: str) -> str:
    return f"opsmeter:policy:status:{workspace_id}"


@dataclass(frozen=True)
class PlanRecord:
    plan: PlanTier
    rate_limit_per_minute: int | None
    """None: no per-minute limit (Enterprise without a policy)."""
    monthly_request_quota: int | None
    """None: unlimited."""


class PlanProjection:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def save(self, workspace_id: str, record: PlanRecord) -> None:
        await self._redis.hset(
            plan_key(workspace_id),
            mapping={
                "plan": record.plan,
                "rate_limit_per_minute": _opt(record.rate_limit_per_minute),
                "monthly_request_quota": _opt(record.monthly_request_quota),
            },
        )

    async def get(self, workspace_id: str) -> PlanRecord | None:
        record = decode_hash(await self._redis.hgetall(plan_key(workspace_id)))
        if not record:
            return None
        return PlanRecord(
            plan=cast(PlanTier, record["plan"]),
            rate_limit_per_minute=_int_or_none(record.get("rate_limit_per_minute", "")),
            monthly_request_quota=_int_or_none(record.get("monthly_request_quota", "")),
        )


@dataclass(frozen=True)
class PolicyStatus:
    """What the gateway needs to answer an ingest: flags, mode and whether to block."""

    budget_warning: bool = False
    budget_exceeded: bool = False
    enforcement: Enforcement = "advisory"
    kill_switch: bool = False

    @property
    def policy_mode(self) -> Literal["enforce", "observe"]:
        return "observe" if self.kill_switch else "enforce"

    @property
    def blocks_ingest(self) -> bool:
        """Hard-stop answers 402 once a budget is exceeded, unless the kill switch puts policy in observe mode."""
        return self.enforcement == "hard_stop" and self.budget_exceeded and not self.kill_switch


class PolicyStatusProjection:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def save(self, workspace_id: str, status: PolicyStatus) -> None:
        await self._redis.hset(
            policy_status_key(workspace_id),
            mapping={
                "budget_warning": int(status.budget_warning),
                "budget_exceeded": int(status.budget_exceeded),
                "enforcement": status.enforcement,
                "kill_switch": int(status.kill_switch),
            },
        )

    async def get(self, workspace_id: str) -> PolicyStatus:
        return policy_status_from_hash(decode_hash(await self._redis.hgetall(policy_status_key(workspace_id))))


def policy_status_from_hash(record: dict[str, str]) -> PolicyStatus:
    """The status a hash describes; a missing hash means defaults (advisory, no flags)."""
    return PolicyStatus(
        budget_warning=record.get("budget_warning") == "1",
        budget_exceeded=record.get("budget_exceeded") == "1",
        enforcement="hard_stop" if record.get("enforcement") == "hard_stop" else "advisory",
        kill_switch=record.get("kill_switch") == "1",
    )


def _opt(value: int | None) -> str | int:
    return "" if value is None else value


def _int_or_none(text: str) -> int | None:
    return int(text) if text else None
