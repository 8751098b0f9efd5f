"""Errors of this service carry their outcome; the shared ones live in ``opsmeter_runtime.errors``."""

from opsmeter_runtime.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    OpsmeterError,
    PlanRequired,
    PoisonMessage,
    TransientError,
    Unauthorized,
)

__all__ = [
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PlanRequired",
    "PoisonMessage",
    "QueryRunning",
    "TransientError",
    "Unauthorized",
]


class QueryRunning(OpsmeterError):
    """429: the caller's previous analyst query has not answered yet (one at a time per workspace)."""

    status_code = 429
    reason = "query_running"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})
