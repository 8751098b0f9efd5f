"""Reads the console needs beyond the reports: a stacked cost series and the raw events behind a driver."""

from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from opsmeter_reporting.api.answers import EventsPage, SeriesAnswer
from opsmeter_reporting.api.deps import Deps, WorkspaceReader
from opsmeter_reporting.api.routes import DataMode, _invalid, _window
from opsmeter_reporting.api.views import iso
from opsmeter_reporting.domain import Dimension, InvalidRange
from opsmeter_reporting.explore import EventsQuery, SeriesBucket, StackBy, decode_cursor, encode_cursor, series_bucket
from opsmeter_runtime.http import json_response
from opsmeter_runtime.money import format_micro_usd

router = APIRouter(tags=["reports"])


@router.get("/v1/workspaces/{workspace_id}/usage/series", response_model=SeriesAnswer)
async def usage_series(
    principal: WorkspaceReader,
    deps: Deps,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
    stack_by: Annotated[StackBy, Query(alias="stackBy")] = "model",
    bucket: Annotated[SeriesBucket | None, Query()] = None,
    data_mode: DataMode = "real",
) -> Response:
    """Cost per hour or day stacked by model or provider, with requests and errors per bucket."""
    window = _window(from_, to)
    try:
        size = series_bucket(window, bucket)
    except InvalidRange as exc:
        raise _invalid(exc) from None
    points = await deps.store.series(principal.workspace_id, window, size, stack_by, data_mode)
    buckets: dict[str, dict[str, Any]] = defaultdict(lambda: {"requests": 0, "errors": 0, "costMicroUsd": 0})
    for p in points:
        b = buckets[iso(p.bucket)]
        b["requests"] += p.requests
        b["errors"] += p.errors
        b["costMicroUsd"] += p.cost_micro_usd
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "from": iso(window.start),
            "to": iso(window.end),
            "bucket": size,
            "stackBy": stack_by,
            "dataMode": data_mode,
            "totals": {
                "requests": sum(p.requests for p in points),
                "errors": sum(p.errors for p in points),
                "tokens": sum(p.total_tokens for p in points),
                "costMicroUsd": sum(p.cost_micro_usd for p in points),
            },
            "buckets": [{"at": at, **b} for at, b in sorted(buckets.items())],
            "points": [
                {
                    "at": iso(p.bucket),
                    "key": p.key,
                    "requests": p.requests,
                    "errors": p.errors,
                    "costUsd": format_micro_usd(p.cost_micro_usd),
                    "costMicroUsd": p.cost_micro_usd,
                }
                for p in points
            ],
        }
    )


@router.get("/v1/workspaces/{workspace_id}/events", response_model=EventsPage)
async def raw_events(
    principal: WorkspaceReader,
    deps: Deps,
    from_: Annotated[datetime, Query(alias="from")],
    to: Annotated[datetime, Query()],
    dimension: Annotated[Dimension | None, Query()] = None,
    key: Annotated[str, Query(max_length=128)] = "",
    before: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    data_mode: DataMode = "real",
) -> Response:
    """The raw events of a window (of one driver when ``dimension`` and ``key`` are given), newest first, paged."""
    try:
        cursor = decode_cursor(before) if before else None
    except InvalidRange as exc:
        raise _invalid(exc) from None
    query = EventsQuery(_window(from_, to), data_mode, limit + 1, dimension, key, cursor)
    rows = await deps.store.events(principal.workspace_id, query)
    page, more = rows[:limit], len(rows) > limit
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "from": iso(query.window.start),
            "to": iso(query.window.end),
            "dimension": dimension,
            "key": key if dimension else None,
            "events": [
                {
                    "eventId": r["event_id"],
                    "occurredAt": iso(r["occurred_at"]),
                    "provider": r["provider"],
                    "model": r["model"],
                    "endpointTag": r["endpoint_tag"],
                    "userId": r["user_id"],
                    "promptVersion": r["prompt_version"],
                    "status": r["status"],
                    "errorCode": r["error_code"],
                    "inputTokens": r["input_tokens"],
                    "outputTokens": r["output_tokens"],
                    "latencyMs": r["latency_ms"],
                    "costUsd": format_micro_usd(r["cost_micro_usd"]),
                    "costMicroUsd": r["cost_micro_usd"],
                }
                for r in page
            ],
            "nextBefore": encode_cursor(page[-1]["occurred_at"], page[-1]["event_id"]) if more else None,
        }
    )
