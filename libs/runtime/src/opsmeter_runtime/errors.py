"""Errors that carry their outcome: an HTTP status for APIs, retry or dead-letter for consumers."""

from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from opsmeter_contracts import DecodeError


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


class Conflict(OpsmeterError):
    status_code = 409
    reason = "conflict"


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


class Failure(StrEnum):
    """Why a consumer handler failed, which decides what the consumer engine does with the message."""

    TRANSIENT = "transient"
    """A store or the broker is unavailable: retry with backoff for as long as it takes, never dead-letter."""
    POISON = "poison"
    """The message itself cannot succeed (undecodable, invalid, or an error that says so): dead-letter at once."""
    UNKNOWN = "unknown"
    """Anything else (most likely a bug): a few retries, then the dead-letter topic, where a replay recovers it."""


_TRANSIENT_BY_NAME = frozenset(
    {
        "redis.exceptions.ConnectionError",
        "redis.exceptions.TimeoutError",
        "redis.exceptions.ReadOnlyError",
        "redis.exceptions.OutOfMemoryError",
        "redis.exceptions.TryAgainError",
        "redis.exceptions.ClusterDownError",
        "aiokafka.errors.KafkaConnectionError",
        "aiokafka.errors.KafkaTimeoutError",
        "clickhouse_connect.driver.exceptions.OperationalError",
    }
)
"""Store errors that say "unavailable", by qualified class name (subclasses match too), so that this module
imports none of the clients; ``OSError`` (refused, reset, timed out) is transient as well."""

_CLICKHOUSE_TRANSIENT_CODES = frozenset({159, 164, 202, 209, 210, 241, 242, 252, 425})
"""TIMEOUT_EXCEEDED, READONLY, TOO_MANY_SIMULTANEOUS_QUERIES, SOCKET_TIMEOUT, NETWORK_ERROR,
MEMORY_LIMIT_EXCEEDED, TABLE_IS_READ_ONLY, TOO_MANY_PARTS, SYSTEM_ERROR: the server's state, not the row's."""


def _qualified_names(exc: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}


def _own_failure(exc: BaseException) -> Failure | None:
    if isinstance(exc, PoisonMessage | ValidationError | DecodeError):
        return Failure.POISON
    if isinstance(exc, TransientError | OSError):
        return Failure.TRANSIENT
    names = _qualified_names(exc)
    retriable_kafka = "aiokafka.errors.KafkaError" in names and getattr(exc, "retriable", False) is True
    if names & _TRANSIENT_BY_NAME or retriable_kafka:
        return Failure.TRANSIENT
    if "clickhouse_connect.driver.exceptions.DatabaseError" in names:
        code = getattr(exc, "code", None)
        if isinstance(code, int) and code in _CLICKHOUSE_TRANSIENT_CODES:
            return Failure.TRANSIENT
    if isinstance(exc, BaseExceptionGroup):
        kinds = {classify_failure(inner) for inner in exc.exceptions}
        for kind in (Failure.POISON, Failure.UNKNOWN):
            if kind in kinds:
                return kind
        return Failure.TRANSIENT
    return None


def classify_failure(exc: BaseException) -> Failure:
    """Transient, poison or unknown: the exception itself first, then what it was raised ``from``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = _own_failure(current)
        if kind is not None:
            return kind
        current = current.__cause__
    return Failure.UNKNOWN


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
