import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import ValidationError

from opsmeter_alerting.api.answers import AlertLogAnswer, AlertSettingsAnswer, ReplayAnswer, SentTestAlert
from opsmeter_alerting.api.deps import Deps, WorkspaceReader, WorkspaceWriter
from opsmeter_alerting.domain import AlertContent, AlertSettings, public_settings
from opsmeter_alerting.errors import InvalidRequest, PlanRequired
from opsmeter_runtime.http import json_body, json_response
from opsmeter_runtime.projections import plan_at_least

router = APIRouter(tags=["alerts"])


@router.get("/v1/workspaces/{workspace_id}/alerts/settings", response_model=AlertSettingsAnswer)
async def get_settings(principal: WorkspaceReader, deps: Deps) -> Response:
    stored = await deps.alerts.settings.get(principal.workspace_id)
    return json_response(public_settings(stored.settings if stored else AlertSettings()))


@router.put(
    "/v1/workspaces/{workspace_id}/alerts/settings",
    response_model=AlertSettingsAnswer,
    openapi_extra={"requestBody": json_body(AlertSettings)},
)
async def put_settings(
    principal: WorkspaceWriter, deps: Deps, body: Annotated[dict[str, Any], Body(include_in_schema=False)]
) -> Response:
    stored = await deps.alerts.settings.get(principal.workspace_id)
    previous = stored.settings if stored else AlertSettings()
    try:
        settings = AlertSettings.model_validate({**body, "version": previous.version}).with_channel_ids()
        settings = settings.keeping_secrets_of(previous)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise InvalidRequest("invalid alert settings", errors=errors) from exc
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    if len({c.id for c in settings.channels}) != len(settings.channels):
        raise InvalidRequest("channel ids must be unique")
    required = settings.required_plan()
    if required is not None:
        plan = await deps.plans.get(principal.workspace_id)
        current = plan.plan if plan else "free"
        if not plan_at_least(current, required):
            raise PlanRequired(required, current, feature="these alert settings")
    saved = await deps.alerts.save_settings(
        principal.workspace_id, settings, credential_id=principal.credential_id, role=principal.role
    )
    return json_response(public_settings(saved.settings))


@router.get("/v1/workspaces/{workspace_id}/alerts", response_model=AlertLogAnswer)
async def alert_log(principal: WorkspaceReader, deps: Deps, limit: int = Query(default=100, ge=1, le=500)) -> Response:
    """Each alert with its deliveries: status, every attempt (time, outcome, HTTP status, error)."""
    return json_response({"alerts": await deps.alerts.log(principal.workspace_id, limit=limit)})


@router.post("/v1/workspaces/{workspace_id}/alerts/test", status_code=202, response_model=SentTestAlert)
async def test_alert(principal: WorkspaceWriter, deps: Deps) -> Response:
    stored = await deps.alerts.settings.get(principal.workspace_id)
    channels = [c.id for c in stored.settings.channels if c.enabled] if stored else []
    if not channels:
        raise InvalidRequest("no enabled channel to send a test alert through")
    content = AlertContent(
        family="system",
        rule="test",
        scope="workspace",
        severity="info",
        title="Opsmeter test alert",
        lines=("If you can read this, alerts reach this channel.",),
    )
    alert_id = await deps.alerts.raise_alert(
        principal.workspace_id, content, guard=f"test:{uuid.uuid4()}", cooldown=False
    )
    return json_response({"alertId": alert_id, "channels": channels}, 202)


@router.post("/v1/workspaces/{workspace_id}/alerts/dead-letters/replay", status_code=202, response_model=ReplayAnswer)
async def replay(principal: WorkspaceWriter, deps: Deps) -> Response:
    """Queue every dead-lettered delivery again; receivers see the same idempotency key as before."""
    return json_response({"replayed": await deps.alerts.replay_dead_letters(principal.workspace_id)}, 202)
