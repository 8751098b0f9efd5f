import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsmeter_pricing import PriceCatalog
from opsmeter_reporting import render
from opsmeter_reporting.analyst_sql import AnalystBusy, AnalystLimits, AnalystSqlRefused, prepare
from opsmeter_reporting.api.answers import (
    BoardPackAnswer,
    ChecklistAnswer,
    QualityAnswer,
    RebuildAnswer,
    ReconciliationAnswer,
    RepricingAnswer,
    RepricingHistory,
    SettingsHistoryAnswer,
    SpikeAnswer,
    SqlAnswer,
    UnpricedAnswer,
    UsageAnswer,
    WeeklyAnswer,
)
from opsmeter_reporting.api.deps import (
    Deps,
    Operator,
    ProReader,
    StarterReader,
    TeamReader,
    WorkspaceReader,
    WorkspaceWriter,
)
from opsmeter_reporting.api.views import (
    analysis_json,
    board_pack_json,
    checklist_json,
    iso,
    quality_parts_json,
    settings_change_json,
    weekly_json,
)
from opsmeter_reporting.domain import (
    GroupBy,
    InvalidRange,
    SpikeWindowName,
    UsageWindow,
    onboarding_checklist,
    parse_range_bound,
    quality_parts,
    quality_score,
    retention_applied,
    spike_windows,
)
from opsmeter_reporting.errors import QueryRunning
from opsmeter_reporting.explore import aware
from opsmeter_reporting.metrics import prometheus_text
from opsmeter_reporting.reconcile import (
    ReportFetchFailed,
    ReportInvalid,
    anthropic_cost_report,
    billed_window,
    csv_costs,
    fetch_report,
    openai_costs,
    reconcile,
)
from opsmeter_reporting.reports import board_pack, investigate, tracking_facts, weekly_report
from opsmeter_reporting.repricing import run_repricing
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.errors import InvalidRequest, Unavailable
from opsmeter_runtime.http import json_response
from opsmeter_runtime.money import format_micro_usd

router = APIRouter()

DataMode = Annotated[Literal["real", "test", "demo"], Query(alias="dataMode")]


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid(exc: InvalidRange) -> InvalidRequest:
    return InvalidRequest(str(exc), errors=[{"field": exc.field or "from", "message": str(exc)}])


async def _retention(deps: Deps, workspace_id: str, earliest: UsageWindow, *, now: datetime) -> dict[str, object]:
    """Whether an answer reaching back to ``earliest`` starts before the plan's raw-event window (SPEC §8): the
    detail before it is gone, so the figures leave it out and the answer says so. ``now`` is the one the window was
    drawn from: a default window reaching back exactly the raw window is not past it."""
    retention = await deps.plans.retention(workspace_id)
    applied = retention_applied(earliest, retention, now=now)
    return {
        "retentionWindowApplied": applied,
        "rawRetentionDays": retention.raw_days,
        "notice": "Retention window applied" if applied else None,
    }


def _window(start: datetime | None, end: datetime | None, *, now: datetime | None = None) -> UsageWindow:
    try:
        return UsageWindow.parse(start, end, now=now or _now())
    except InvalidRange as exc:
        raise _invalid(exc) from None


@router.get("/v1/workspaces/{workspace_id}/usage", response_model=UsageAnswer, tags=["reports"])
async def usage(
    principal: WorkspaceReader,
    deps: Deps,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
    group_by: Annotated[GroupBy, Query(alias="groupBy")] = "day",
    data_mode: DataMode = "real",
) -> Response:
    now = _now()
    window = _window(from_, to, now=now)
    rows = await deps.store.usage(principal.workspace_id, window, group_by, data_mode)
    refused = await deps.rejections.rejections(principal.workspace_id, window.start, window.end)
    retention = await _retention(deps, principal.workspace_id, window, now=now)
    total_cost = sum(r.cost_micro_usd for r in rows)
    computed = sum(r.computed_cost_micro_usd for r in rows)
    reported = sum(r.reported_cost_micro_usd for r in rows)
    counterpart = sum(r.computed_where_reported_micro_usd for r in rows)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "from": iso(window.start),
            "to": iso(window.end),
            "groupBy": group_by,
            "dataMode": data_mode,
            "totals": {
                "requests": sum(r.requests for r in rows),
                "inputTokens": sum(r.input_tokens for r in rows),
                "outputTokens": sum(r.output_tokens for r in rows),
                "totalTokens": sum(r.total_tokens for r in rows),
                "costUsd": format_micro_usd(total_cost),
                "costMicroUsd": total_cost,
                **_both_costs(computed, reported, sum(r.reported_requests for r in rows), counterpart),
                "unpricedRequests": sum(r.unpriced_requests for r in rows),
            },
            "rows": [
                {
                    "key": r.key,
                    "requests": r.requests,
                    "inputTokens": r.input_tokens,
                    "outputTokens": r.output_tokens,
                    "totalTokens": r.total_tokens,
                    "costUsd": format_micro_usd(r.cost_micro_usd),
                    "costMicroUsd": r.cost_micro_usd,
                    **_both_costs(
                        r.computed_cost_micro_usd,
                        r.reported_cost_micro_usd,
                        r.reported_requests,
                        r.computed_where_reported_micro_usd,
                    ),
                }
                for r in rows
            ],
            "rejections": {
                "total": sum(refused.values()),
                "rateLimited": refused["rate_limited"],
                "invalidPayload": refused["invalid_payload"],
                "planLimitReached": refused["plan_limit_reached"],
                "budgetExceeded": refused["budget_exceeded"],
            },
            **retention,
        }
    )


@router.get("/v1/workspaces/{workspace_id}/prices/unpriced", response_model=UnpricedAnswer, tags=["reports"])
async def unpriced(principal: WorkspaceReader, deps: Deps, data_mode: DataMode = "real") -> Response:
    """Models the workspace's calls named that no price covered (ADR 57): price them with ``PUT .../prices``."""
    models = await deps.store.unpriced(principal.workspace_id, data_mode)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "dataMode": data_mode,
            "models": [
                {
                    "model": m.model,
                    "provider": m.provider,
                    "firstSeen": iso(m.first_seen),
                    "lastSeen": iso(m.last_seen),
                    "requests": m.requests,
                    "inputTokens": m.input_tokens,
                    "outputTokens": m.output_tokens,
                }
                for m in models
            ],
        }
    )


class RepricingBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: datetime = Field(alias="from", description="Start of the range (inclusive), RFC 3339 with an offset.")
    to: datetime = Field(description="End of the range (exclusive).")
    dry_run: bool = Field(default=True, alias="dryRun")
    models: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default_factory=list, max_length=200)
    data_mode: Literal["real", "test", "demo"] = Field(default="real", alias="dataMode")
    reason: str = Field(default="", max_length=500)


@router.post("/v1/workspaces/{workspace_id}/repricing", response_model=RepricingAnswer, tags=["pricing"])
async def repricing(body: RepricingBody, principal: WorkspaceWriter, deps: Deps) -> Response:
    """Price the range's stored calls again (workspace prices, then the installed catalog). ``dryRun`` (default)
    answers the diff per model; applied, correction events move budgets and reports by exactly that diff, and
    an audit record says who re-priced what and why (ADR 57)."""
    if not body.dry_run and not body.reason.strip():
        raise InvalidRequest(
            "reason is required to apply a re-pricing", errors=[{"field": "reason", "message": "is required"}]
        )
    window = _window(body.from_, body.to)
    result = await run_repricing(
        principal,
        window,
        data_mode=body.data_mode,
        models=body.models,
        dry_run=body.dry_run,
        reason=body.reason.strip(),
        store=deps.store,
        publisher=deps.resources.publisher,
        redis=deps.resources.redis,
        catalog=PriceCatalog.load_default(),
    )
    delta = sum(d.delta_micro_usd for d in result.diffs)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "repricingId": result.repricing_id,
            "dryRun": body.dry_run,
            "from": iso(window.start),
            "to": iso(window.end),
            "dataMode": body.data_mode,
            "priceCatalogVersion": result.catalog_version,
            "workspacePricesVersion": result.workspace_prices_version,
            "correctedEvents": result.corrected_events,
            "deltaUsd": format_micro_usd(delta),
            "deltaMicroUsd": delta,
            "models": [
                {
                    "model": d.model,
                    "provider": d.provider,
                    "requests": d.requests,
                    "repriced": d.repriced,
                    "oldCostUsd": format_micro_usd(d.old_cost_micro_usd),
                    "newCostUsd": format_micro_usd(d.new_cost_micro_usd),
                    "computedDeltaUsd": format_micro_usd(d.computed_delta_micro_usd),
                    "deltaUsd": format_micro_usd(d.delta_micro_usd),
                    "deltaMicroUsd": d.delta_micro_usd,
                }
                for d in result.diffs
            ],
        }
    )


@router.get("/v1/workspaces/{workspace_id}/repricing", response_model=RepricingHistory, tags=["pricing"])
async def repricing_history(principal: WorkspaceReader, deps: Deps) -> Response:
    """The audit trail of applied re-pricings: who, when, what range and models, why, and what moved."""
    rows = await deps.store.repricings(principal.workspace_id)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "repricings": [
                {
                    "repricingId": r["repricing_id"],
                    "appliedAt": iso(aware(r["applied_at"])),
                    "from": iso(aware(r["range_from"])),
                    "to": iso(aware(r["range_to"])),
                    "dataMode": r["data_mode"],
                    "models": list(r["models"]),
                    "correctedEvents": int(r["corrected_events"]),
                    "deltaUsd": format_micro_usd(int(r["delta_micro_usd"])),
                    "priceCatalogVersion": r["price_catalog_version"],
                    "workspacePricesVersion": int(r["workspace_prices_version"]),
                    "requestedBy": r["requested_by"],
                    "requestedByRole": r["requested_by_role"],
                    "reason": r["reason"],
                }
                for r in rows
            ],
        }
    )


class FetchBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    admin_key: str = Field(alias="adminKey", min_length=1, max_length=512, description="Used once, never stored.")
    from_: datetime = Field(alias="from")
    to: datetime


class ReconciliationBody(BaseModel):
    """The provider's cost report: its JSON response as is (``report``), a CSV export (``csv``: ``date``,
    ``model``, ``cost_usd``), or fetched with an organization admin key (``fetch``); exactly one."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    provider: Literal["openai", "anthropic"]
    report: dict[str, Any] | None = None
    csv: str | None = Field(default=None, max_length=5_000_000)
    fetch: FetchBody | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "ReconciliationBody":
        if sum(source is not None for source in (self.report, self.csv, self.fetch)) != 1:
            raise ValueError("send exactly one of report, csv and fetch")
        return self


@router.post("/v1/workspaces/{workspace_id}/reconciliation", response_model=ReconciliationAnswer, tags=["pricing"])
async def reconciliation(body: ReconciliationBody, principal: WorkspaceReader, deps: Deps) -> Response:
    """Per UTC day and model: computed, reported and billed cost, the gap, and its likely reason (ADR 57)."""
    catalog = PriceCatalog.load_default()

    def normalize(model: str) -> str:
        return catalog.normalize_model(body.provider, model)

    try:
        document: Any = body.report
        if body.fetch is not None:
            window = _window(body.fetch.from_, body.fetch.to)
            base = getattr(deps.settings, f"{body.provider}_admin_base_url")
            document = await fetch_report(body.provider, body.fetch.admin_key, base, window.start, window.end)
        if body.csv is not None:
            lines = csv_costs(body.csv, normalize)
        elif body.provider == "openai":
            lines = openai_costs(document, normalize)
        else:
            lines = anthropic_cost_report(document, normalize)
        start, end = billed_window(lines) if body.fetch is None else (window.start, window.end)
    except ReportInvalid as exc:
        source = "csv" if body.csv is not None else "report"
        raise InvalidRequest(str(exc), errors=[{"field": source, "message": str(exc)}]) from None
    except ReportFetchFailed as exc:
        raise Unavailable(str(exc)) from None
    days = reconcile(
        lines, await deps.store.stored_days(principal.workspace_id, body.provider, UsageWindow(start, end))
    )
    totals = {
        "computedUsd": format_micro_usd(sum(d.computed_micro_usd for d in days)),
        "reportedUsd": format_micro_usd(sum(d.reported_micro_usd for d in days)),
        "billedUsd": format_micro_usd(sum(d.billed_micro_usd for d in days)),
        "gapUsd": format_micro_usd(sum(d.gap_micro_usd for d in days)),
    }
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "provider": body.provider,
            "from": iso(start),
            "to": iso(end),
            "totals": totals,
            "gaps": sum(d.reason != "matches" for d in days),
            "days": [
                {
                    "day": d.day.isoformat(),
                    "model": d.model,
                    "requests": d.requests,
                    "computedUsd": format_micro_usd(d.computed_micro_usd),
                    "reportedUsd": format_micro_usd(d.reported_micro_usd),
                    "billedUsd": format_micro_usd(d.billed_micro_usd),
                    "gapUsd": format_micro_usd(d.gap_micro_usd),
                    "gapMicroUsd": d.gap_micro_usd,
                    "reason": d.reason,
                    "explanation": d.explanation,
                }
                for d in days
            ],
        }
    )


def _both_costs(computed: int, reported: int, reported_requests: int, counterpart: int) -> dict[str, Any]:
    return {
        "computedCostUsd": format_micro_usd(computed),
        "reportedCostUsd": format_micro_usd(reported),
        "reportedRequests": reported_requests,
        "reportedMinusComputedUsd": format_micro_usd(reported - counterpart),
    }


@router.get("/v1/workspaces/{workspace_id}/settings-history", response_model=SettingsHistoryAnswer, tags=["reports"])
async def settings_history(
    principal: WorkspaceReader, deps: Deps, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> Response:
    """Who changed the workspace's budgets, policy or unit-cost rules, when, and to what; newest first."""
    changes = await deps.store.settings_changes(principal.workspace_id, limit)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "changes": [settings_change_json(c) for c in changes],
        }
    )


@router.get("/v1/workspaces/{workspace_id}/spike", response_model=SpikeAnswer, tags=["reports"])
async def spike(
    principal: WorkspaceReader,
    deps: Deps,
    window: Annotated[SpikeWindowName | None, Query()] = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
    data_mode: DataMode = "real",
) -> Response:
    """Investigate Spike: the current window against the one just before it (default: the last 24 h)."""
    now = _now()
    try:
        current, previous = spike_windows(window, from_, to, now=now)
    except InvalidRange as exc:
        raise _invalid(exc) from None
    analysis = await investigate(deps.store, principal.workspace_id, current, previous, data_mode)
    retention = await _retention(deps, principal.workspace_id, previous, now=now)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "window": window,
            "dataMode": data_mode,
            **analysis_json(analysis),
            **retention,
        }
    )


async def _weekly(principal: Principal, deps: Deps, data_mode: str) -> dict[str, object]:
    policy = await deps.policy.get(principal.workspace_id)
    report = await weekly_report(deps.store, policy, principal.workspace_id, now=_now(), data_mode=data_mode)
    return weekly_json(principal.workspace_id, report, data_mode)


@router.get("/v1/workspaces/{workspace_id}/reports/weekly-executive", response_model=WeeklyAnswer, tags=["reports"])
async def weekly_executive(principal: TeamReader, deps: Deps, data_mode: DataMode = "real") -> Response:
    """The last completed 7 UTC days against the 7 before (Team and above)."""
    return json_response(await _weekly(principal, deps, data_mode))


@router.get(
    "/v1/workspaces/{workspace_id}/reports/weekly-executive.html",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
    tags=["reports"],
)
async def weekly_executive_html(principal: TeamReader, deps: Deps, data_mode: DataMode = "real") -> Response:
    return HTMLResponse(render.weekly_html(await _weekly(principal, deps, data_mode)))


@router.get(
    "/v1/workspaces/{workspace_id}/exports/board-pack",
    response_model=BoardPackAnswer,
    responses={200: {"content": {"text/csv": {}, "application/pdf": {}}}},
    tags=["reports"],
)
async def board_pack_export(
    principal: WorkspaceReader,
    deps: Deps,
    from_: Annotated[str, Query(alias="from")],
    to: Annotated[str, Query()],
    format: Annotated[Literal["csv", "pdf", "json"], Query()] = "csv",
    data_mode: DataMode = "real",
) -> Response:
    """Any custom range; dates are whole UTC days with ``to`` included, times are half-open."""
    try:
        start, end = parse_range_bound(from_, end=False), parse_range_bound(to, end=True)
    except InvalidRange as exc:
        raise _invalid(exc) from None
    window = _window(start, end)
    ws = principal.workspace_id
    policy = await deps.policy.get(ws)
    retention = await deps.plans.retention(ws)
    pack = board_pack_json(
        ws, await board_pack(deps.store, policy, retention, ws, window, now=_now(), data_mode=data_mode), data_mode
    )
    name = f"opsmeter-board-pack-{ws}-{window.start.date()}-{window.end.date()}"
    if format == "json":
        return json_response(pack)
    if format == "pdf":
        return Response(
            render.board_pack_pdf(pack),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'},
        )
    return PlainTextResponse(
        render.board_pack_csv(pack),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/v1/workspaces/{workspace_id}/onboarding/checklist", response_model=ChecklistAnswer, tags=["onboarding"])
async def checklist(principal: StarterReader, deps: Deps) -> Response:
    """First-ingest checklist (Starter and above)."""
    facts = await tracking_facts(deps.store, principal.workspace_id, now=_now())
    items = onboarding_checklist(facts)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "complete": all(i.done for i in items),
            "firstEventAt": iso(facts.first_event_at) if facts.first_event_at else None,
            "items": checklist_json(items),
        }
    )


@router.get("/v1/workspaces/{workspace_id}/quality-score", response_model=QualityAnswer, tags=["onboarding"])
async def quality(principal: ProReader, deps: Deps) -> Response:
    """Tracking quality score 0–100 over the last 7 days of real events (Pro and above)."""
    facts = await tracking_facts(deps.store, principal.workspace_id, now=_now())
    parts = quality_parts(facts)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "score": quality_score(parts),
            "events": facts.events,
            "freshnessP95Seconds": facts.freshness_p95_s,
            "duplicatesSeen": facts.duplicates,
            "parts": quality_parts_json(parts),
        }
    )


class SqlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=20_000)
    max_rows: int = Field(default=1000, ge=1, le=100_000, alias="maxRows")


_ENGINE_REFUSALS = {
    "TIMEOUT_EXCEEDED": "the query ran longer than its time limit ({limit:g} s); narrow the time range or aggregate",
    "QUERY_WAS_CANCELLED": "the query was cancelled",
    "MEMORY_LIMIT_EXCEEDED": "the query needed more memory than its limit; aggregate more or read fewer rows",
    "UNKNOWN_IDENTIFIER": "a column or alias the query names does not exist in the tables it reads",
    "SYNTAX_ERROR": "ClickHouse could not parse the rewritten query",
    "ILLEGAL_TYPE_OF_ARGUMENT": "a function got an argument of the wrong type",
    "NUMBER_OF_ARGUMENTS_DOESNT_MATCH": "a function got the wrong number of arguments",
    "NOT_AN_AGGREGATE": "a selected column is neither aggregated nor in GROUP BY",
}


async def _sql(deps: Deps, body: SqlBody, workspace_id: str | None, limits: AnalystLimits) -> Response:
    try:
        query = await asyncio.to_thread(prepare, body.sql, workspace_id)  # ~20 ms of pure Python per query
        result = await deps.store.run_sql(query, body.max_rows, limits)
    except AnalystSqlRefused as exc:
        raise InvalidRequest(str(exc), errors=[{"field": "sql", "message": str(exc)}]) from None
    except AnalystBusy as exc:
        raise QueryRunning(str(exc)) from None
    except OperationalError:
        raise Unavailable("ClickHouse is unreachable; retry shortly", headers={"Retry-After": "2"}) from None
    except DatabaseError as exc:
        template = _ENGINE_REFUSALS.get(exc.name or "", "ClickHouse could not run the query ({name})")
        message = template.format(limit=limits.max_execution_s, name=exc.name or f"code {exc.code}")
        raise InvalidRequest(message, errors=[{"field": "sql", "message": message}]) from None
    return json_response(
        {"workspaceId": workspace_id, "columns": result.columns, "rows": result.rows, "truncated": result.truncated}
    )


@router.post("/v1/workspaces/{workspace_id}/sql", response_model=SqlAnswer, tags=["analysts"])
async def workspace_sql(principal: WorkspaceReader, deps: Deps, body: SqlBody) -> Response:
    """Read-only SQL over the documented tables, each filtered to the caller's workspace (ADR 0051)."""
    return await _sql(deps, body, principal.workspace_id, deps.settings.workspace_sql_limits)


@router.post("/v1/admin/sql", response_model=SqlAnswer, tags=["analysts"])
async def operator_sql(_: Operator, deps: Deps, body: SqlBody) -> Response:
    """Read-only SQL over the documented tables of every workspace (operator token)."""
    return await _sql(deps, body, None, deps.settings.operator_sql_limits)


MAX_REBUILD_RANGE = timedelta(days=92)


class RebuildBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: datetime = Field(alias="from")
    to: datetime
    workspace_id: str | None = Field(default=None, alias="workspaceId")


@router.post("/v1/admin/rollups/rebuild", response_model=RebuildAnswer, tags=["operations"])
async def rebuild(_: Operator, deps: Deps, body: RebuildBody) -> Response:
    """Recompute hourly rollups and daily summaries of the UTC days covering ``[from, to)`` from raw rows."""
    window = _window(body.from_, body.to)
    if window.end - window.start > MAX_REBUILD_RANGE:
        message = f"at most {MAX_REBUILD_RANGE.days} days per rebuild: the sink waits while rollups are rewritten"
        raise InvalidRequest(message, errors=[{"field": "to", "message": message}])
    events = await deps.store.rebuild(window, body.workspace_id, now=_now())
    return json_response(
        {"from": iso(window.start), "to": iso(window.end), "workspaceId": body.workspace_id, "rawEvents": events}
    )


@router.get("/metrics", tags=["operations"], include_in_schema=False)
async def metrics(deps: Deps) -> Response:
    lag = {(deps.sink.group_id, tp.topic, tp.partition): n for tp, n in (await deps.sink.lag()).items()}
    return PlainTextResponse(prometheus_text(deps.sink_stats, lag))
