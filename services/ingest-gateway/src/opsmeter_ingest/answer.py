"""The shape of every ingest answer (SPEC §5): its status fields and rate-limit headers. No I/O."""

from dataclasses import dataclass
from typing import Any, Literal

from opsmeter_runtime.projections import PolicyStatus

Reason = Literal[
    "invalid_payload",
    "unauthorized",
    "rate_limited",
    "plan_limit_reached",
    "budget_exceeded",
    "unavailable",
    "internal_error",
]


@dataclass(frozen=True)
class PolicyFlags:
    """What the policy projection says of a workspace right now."""

    budget_warning: bool = False
    budget_exceeded: bool = False
    policy_mode: Literal["enforce", "observe"] = "enforce"
    plan_limit_reached: bool = False

    @classmethod
    def from_status(cls, status: PolicyStatus, *, plan_limit_reached: bool = False) -> "PolicyFlags":
        return cls(status.budget_warning, status.budget_exceeded, status.policy_mode, plan_limit_reached)


def answer_body(
    *,
    status: Literal["accepted", "rejected"],
    reason: Reason | None,
    flags: PolicyFlags,
    warnings: tuple[str, ...] | list[str] = (),
    telemetry_paused: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Every JSON answer of the ingest API carries all of these status fields."""
    return {
        "status": status,
        "reason": reason,
        "telemetryPaused": telemetry_paused,
        "providerCallsContinue": True,
        "isPlanLimitReached": flags.plan_limit_reached,
        "budgetWarning": flags.budget_warning,
        "budgetExceeded": flags.budget_exceeded,
        "isBudgetWarning": flags.budget_warning,
        "isBudgetExceeded": flags.budget_exceeded,
        "policyMode": flags.policy_mode,
        "warnings": list(warnings),
        **extra,
    }


def rate_limit_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(reset),
    }
