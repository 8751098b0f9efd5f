"""Demo and test data hygiene (SPEC §5): remove a workspace's demo or test telemetry."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response

from opsmeter_ingest.api.answers import DeletionRequested
from opsmeter_ingest.api.deps import Deps
from opsmeter_ingest.commands import delete_telemetry
from opsmeter_runtime.auth import WRITE_ROLES, Principal, bearer_token
from opsmeter_runtime.errors import Forbidden, Unauthorized
from opsmeter_runtime.http import json_response

router = APIRouter(prefix="/v1/ingest", tags=["ingest"])

Scope = Literal["workspace", "mine"]


async def admin_principal(deps: Deps, authorization: Annotated[str | None, Header()] = None) -> Principal:
    principal = await deps.store.authenticate(bearer_token(authorization), "admin_token")
    if principal is None:
        raise Unauthorized("a valid admin token is required (Authorization: Bearer om_adm_...)")
    return principal


Admin = Annotated[Principal, Depends(admin_principal)]


async def _delete(admin: Principal, deps: Deps, data_mode: Literal["test", "demo"], scope: Scope) -> Response:
    if scope == "workspace" and admin.role not in WRITE_ROLES:
        raise Forbidden("scope=workspace needs the owner or admin role; scope=mine removes your own keys' data")
    key_ids = await delete_telemetry(
        admin, data_mode, scope, publisher=deps.resources.publisher, credentials=deps.store
    )
    return json_response(
        {
            "status": "accepted",
            "workspaceId": admin.workspace_id,
            "dataMode": data_mode,
            "scope": scope,
            "apiKeyIds": key_ids if scope == "mine" else None,
            "message": "deletion requested; reports drop the data within seconds",
        },
        202,
    )


@router.delete("/demo-data", status_code=202, response_model=DeletionRequested)
async def delete_demo_data(admin: Admin, deps: Deps, scope: Annotated[Scope, Query()] = "mine") -> Response:
    return await _delete(admin, deps, "demo", scope)


@router.delete("/test-data", status_code=202, response_model=DeletionRequested)
async def delete_test_data(admin: Admin, deps: Deps, scope: Annotated[Scope, Query()] = "mine") -> Response:
    return await _delete(admin, deps, "test", scope)
