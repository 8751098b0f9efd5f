"""What an OTLP export is answered, from the ingest use case's outcomes for its spans (ADR 58). No I/O.

OTLP/HTTP has no answer per span: 200 with ``partial_success`` counts the spans refused for good (invalid, plan
limit, budget hard-stop) and says why; a span refused for now (rate limit, not durable) makes the whole export
429 or 503 with ``Retry-After``, and the exporter sends it again. That is safe because every span is idempotent
by its ``externalRequestId``: the spans accepted the first time are answered as repeats and counted once.

Repeats count toward the rate limit like any record, so an export holding more model spans than a whole minute
allows could never get through by retrying: its rate-limited spans are rejected in ``partial_success`` instead.
"""

from dataclasses import dataclass

from opsmeter_ingest import outcomes
from opsmeter_ingest.otlp.mapping import SpanRecord

MAX_REASONS = 10
"""Spans named in ``error_message``; the count covers the rest."""


@dataclass(frozen=True)
class ExportAnswer:
    status: int
    """200 (all accepted, or some rejected for good), 429 or 503 (retry the export after ``retry_after_s``)."""
    rejected: int = 0
    message: str = ""
    retry_after_s: int | None = None


def export_answer(records: list[SpanRecord], result: outcomes.IngestResult) -> ExportAnswer:
    pairs = list(zip(records, result.outcomes, strict=True))
    retry_after = max(1, result.retry_after_s or 1)
    if any(isinstance(o, outcomes.RateLimited) for _, o in pairs) and len(pairs) <= result.rate_limit:
        limit = result.rate_limit
        return ExportAnswer(
            429, message=f"over {limit} model calls per minute; retry after {retry_after} s", retry_after_s=retry_after
        )
    if any(isinstance(o, outcomes.Unavailable) for _, o in pairs):
        return ExportAnswer(503, message="the spans could not be made durable now", retry_after_s=retry_after)
    reasons = [f"span {record.span_id}: {why}" for record, o in pairs if (why := _refusal(o)) is not None]
    if not reasons:
        return ExportAnswer(200)
    shown = "; ".join(reasons[:MAX_REASONS])
    more = f"; and {len(reasons) - MAX_REASONS} more" if len(reasons) > MAX_REASONS else ""
    return ExportAnswer(200, len(reasons), f"{len(reasons)} of {len(pairs)} model spans rejected: {shown}{more}")


def _refusal(outcome: outcomes.Outcome) -> str | None:
    match outcome:
        case outcomes.Invalid(errors):
            return "invalid_payload (" + "; ".join(f"{e.field}: {e.message}" for e in errors) + ")"
        case outcomes.PlanLimited():
            return "plan_limit_reached (the plan's monthly request quota is used up; telemetry paused)"
        case outcomes.BudgetStopped():
            return "budget_exceeded (the workspace enforces hard-stop)"
        case outcomes.RateLimited(limit, _):
            return f"rate_limited (the export holds more model spans than the {limit} per minute allowed)"
    return None
