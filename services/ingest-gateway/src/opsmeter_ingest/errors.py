"""Ingest rejections: each carries its HTTP status and renders the full status-field answer."""

from typing import Any

from opsmeter_ingest.answer import PolicyFlags, Reason, answer_body
from opsmeter_ingest.record import FieldError


class IngestRejected(Exception):
    status_code: int = 400
    reason: Reason = "invalid_payload"

    def __init__(
        self,
        message: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        flags: PolicyFlags | None = None,
        telemetry_paused: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}
        self.flags = flags or PolicyFlags()
        self.telemetry_paused = telemetry_paused

    def body(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"message": self.message}
        if self.errors:
            extra["errors"] = [e.as_json() for e in self.errors]
        return answer_body(
            status="rejected",
            reason=self.reason,
            flags=self.flags,
            telemetry_paused=self.telemetry_paused,
            **extra,
        )


class BodyTooLarge(IngestRejected):
    status_code = 413


class NotJson(IngestRejected):
    status_code = 400


class WrongContentType(IngestRejected):
    status_code = 415


class InvalidPayload(IngestRejected):
    status_code = 422


class Unauthorized(IngestRejected):
    status_code = 401
    reason = "unauthorized"


class RateLimited(IngestRejected):
    status_code = 429
    reason = "rate_limited"


class Unavailable(IngestRejected):
    status_code = 503
    reason = "unavailable"
