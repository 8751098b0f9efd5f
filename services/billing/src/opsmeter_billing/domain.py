"""Pure billing rules: plans and their default limits (SPEC §4)."""

from dataclasses import dataclass

from opsmeter_contracts.events import Plan


@dataclass(frozen=True)
class PlanLimits:
    rate_limit_per_minute: int | None
    monthly_request_quota: int | None


DEFAULT_LIMITS: dict[Plan, PlanLimits] = {
    "free": PlanLimits(120, 10_000),
    "starter": PlanLimits(300, 100_000),
    "pro": PlanLimits(600, 1_000_000),
    "team": PlanLimits(3000, 10_000_000),
    "enterprise": PlanLimits(None, None),
}


def limits_for(plan: Plan, rate_limit_override: int | None, quota_override: int | None) -> PlanLimits:
    """A workspace's limits: its own overrides (Enterprise policy) over the plan's defaults."""
    default = DEFAULT_LIMITS[plan]
    return PlanLimits(
        rate_limit_override if rate_limit_override is not None else default.rate_limit_per_minute,
        quota_override if quota_override is not None else default.monthly_request_quota,
    )
