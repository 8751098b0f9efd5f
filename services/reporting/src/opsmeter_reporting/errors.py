"""Errors of this service carry their outcome; the shared ones live in ``opsmeter_runtime.errors``."""

from opsmeter_runtime.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    PlanRequired,
    PoisonMessage,
    TransientError,
    Unauthorized,
)

__all__ = ["Forbidden", "InvalidRequest", "NotFound", "PlanRequired", "PoisonMessage", "TransientError", "Unauthorized"]
