from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from opsmeter_reporting.api.deps import Deps, WorkspaceReader
from opsmeter_reporting.domain import GroupBy, InvalidRange, UsageWindow
from opsmeter_runtime.errors import InvalidRequest
from opsmeter_runtime.http import json_response
from opsmeter_runtime.money import format_micro_usd

router = APIRouter()


@router.get("/v1/workspaces/{workspace_id}/usage", tags=["reports"])
async def usage(
    principal: WorkspaceReader,
    deps: Deps,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: Annotated[datetime | None, Query()] = None,
    group_by: Annotated[GroupBy, Query(alias="groupBy")] = "day",
    data_mode: Annotated[Literal["real", "test", "demo"], Query(alias="dataMode")] = "real",
) -> Response:
    try:
        window = UsageWindow.parse(from_, to, now=datetime.now(UTC))
    except InvalidRange as exc:
        raise InvalidRequest(str(exc)) from None
    rows = await deps.store.usage(principal.workspace_id, window, group_by, data_mode)
    total_cost = sum(r.cost_micro_usd for r in rows)
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "from": window.start.isoformat().replace("+00:00", "Z"),
            "to": window.end.isoformat().replace("+00:00", "Z"),
            "groupBy": group_by,
            "dataMode": data_mode,
            "totals": {
                "requests": sum(r.requests for r in rows),
                "inputTokens": sum(r.input_tokens for r in rows),
                "outputTokens": sum(r.output_tokens for r in rows),
                "totalTokens": sum(r.total_tokens for r in rows),
                "costUsd": format_micro_usd(total_cost),
                "costMicroUsd": total_cost,
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
                }
                for r in rows
            ],
        }
    )
