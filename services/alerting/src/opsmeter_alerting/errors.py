"""Errors of this service carry their outcome; the shared ones live in ``opsmeter_runtime.errors``."""

from opsmeter_runtime.errors import Forbidden, InvalidRequest, NotFound, PoisonMessage, TransientError
from opsmeter_runtime.projections import PlanTier


class PlanRequired(Forbidden):
    """403 ``plan_required``: these settings need a higher plan (SPEC §7)."""

    reason = "plan_required"

    def __init__(self, required: PlanTier, current: PlanTier) -> None:
        super().__init__(
            f"these alert settings need the {required.capitalize()} plan or above; "
            f"the workspace is on {current.capitalize()}",
            error="plan_required",
            requiredPlan=required,
            currentPlan=current,
        )


__all__ = ["Forbidden", "InvalidRequest", "NotFound", "PlanRequired", "PoisonMessage", "TransientError"]
