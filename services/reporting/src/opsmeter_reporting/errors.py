"""Errors of this service carry their outcome; the shared ones live in ``opsmeter_runtime.errors``."""

from opsmeter_runtime.errors import Forbidden, InvalidRequest, NotFound, PoisonMessage, TransientError, Unauthorized
from opsmeter_runtime.projections import PlanTier


class PlanRequired(Forbidden):
    """403 ``plan_required``: the feature needs a higher plan (SPEC §4)."""

    reason = "plan_required"

    def __init__(self, required: PlanTier, current: PlanTier) -> None:
        super().__init__(
            f"this needs the {required.capitalize()} plan or above; the workspace is on {current.capitalize()}",
            error="plan_required",
            requiredPlan=required,
            currentPlan=current,
        )


__all__ = ["Forbidden", "InvalidRequest", "NotFound", "PlanRequired", "PoisonMessage", "TransientError", "Unauthorized"]
