from datetime import UTC, datetime

from fastapi import APIRouter, Response

from opsmeter_policy.api.deps import Deps, WorkspaceReader
from opsmeter_policy.domain import day_window, month_window
from opsmeter_runtime.http import json_response
from opsmeter_runtime.money import format_micro_usd

router = APIRouter()


@router.get("/v1/workspaces/{workspace_id}/spend", tags=["policy"])
async def current_spend(principal: WorkspaceReader, deps: Deps) -> Response:
    now = datetime.now(UTC)
    windows = {"daily": day_window(now), "monthly": month_window(now)}
    body: dict[str, object] = {"workspaceId": principal.workspace_id}
    for name, window in windows.items():
        spent = await deps.ledger.spend(principal.workspace_id, window)
        body[name] = {
            "periodStart": window.start.isoformat().replace("+00:00", "Z"),
            "periodEnd": window.end.isoformat().replace("+00:00", "Z"),
            "currentSpendUsd": format_micro_usd(spent),
            "currentSpendMicroUsd": spent,
        }
    return json_response(body)
