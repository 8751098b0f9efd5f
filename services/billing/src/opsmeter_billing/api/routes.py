from fastapi import APIRouter, Response

from opsmeter_billing.api.deps import Deps, WorkspaceReader
from opsmeter_runtime.errors import NotFound
from opsmeter_runtime.http import json_response

router = APIRouter(tags=["billing"])


@router.get("/v1/workspaces/{workspace_id}/plan")
async def workspace_plan(principal: WorkspaceReader, deps: Deps) -> Response:
    found = await deps.plans.get(principal.workspace_id)
    if found is None:
        raise NotFound("no plan recorded for this workspace yet")
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "planTier": found.plan,
            "rateLimitPerMinute": found.rate_limit_per_minute,
            "monthlyRequestQuota": found.monthly_request_quota,
        }
    )
