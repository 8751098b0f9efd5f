"""Errors that carry their outcome: an HTTP status for APIs, retry or dead-letter for consumers."""

from typing import Any


class OpsmeterError(Exception):
    """Base error: ``status_code`` and ``reason`` are what one HTTP handler renders."""

    status_code: int = 500
    reason: str = "internal_error"

    def __init__(self, message: str = "", *, headers: dict[str, str] | None = None, **body: Any) -> None:
        super().__init__(message or self.reason)
        self.message = message or self.reason
        self.headers = headers or {}
        self.body = body


class Unauthorized(OpsmeterError):
    status_code = 401
    reason = "unauthorized"


class Forbidden(OpsmeterError):
    status_code = 403
    reason = "forbidden"


class NotFound(OpsmeterError):
    status_code = 404
    reason = "not_found"


class InvalidRequest(OpsmeterError):
    status_code = 422
    reason = "invalid_payload"


class Unavailable(OpsmeterError):
    status_code = 503
    reason = "unavailable"


class TransientError(Exception):
    """A consumer handler failed for a reason that passes (a store is down): retry, never dead-letter."""


class PoisonMessage(Exception):
    """A message that will never succeed: send it to the dead-letter topic at once."""


class PlanRequired(Forbidden):
    """403 ``plan_required``: the feature needs a higher plan (SPEC §4)."""

    reason = "plan_required"

    def __init__(self, required: str, current: str, *, feature: str = "this") -> None:
        super().__init__(
            f"{feature} needs the {required.capitalize()} plan or above; the workspace is on {current.capitalize()}",
            error="plan_required",
            requiredPlan=required,
            currentPlan=current,
        )
