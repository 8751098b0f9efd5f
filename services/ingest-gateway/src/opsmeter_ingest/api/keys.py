"""Ingest API keys of a workspace: create, list, rotate, revoke (admin token of that workspace)."""

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from opsmeter_ingest.api.answers import IssuedAdminToken, IssuedKey, KeyList
from opsmeter_ingest.api.deps import Deps, WorkspaceReader, WorkspaceWriter
from opsmeter_ingest.commands import create_admin_token, create_api_key, revoke_api_key, rotate_api_key
from opsmeter_runtime.auth import IssuedCredential
from opsmeter_runtime.http import json_response

router = APIRouter(prefix="/v1/workspaces/{workspace_id}/api-keys", tags=["api-keys"])


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(default="", max_length=128)
    mode: Literal["live", "test"] = "live"


def _issued(key: IssuedCredential) -> dict[str, Any]:
    return {"apiKeyId": key.credential_id, "apiKey": key.plaintext, "prefix": key.display_prefix}


@router.post("", status_code=201, response_model=IssuedKey)
async def create_key(admin: WorkspaceWriter, deps: Deps, body: CreateKeyBody | None = None) -> Response:
    body = body or CreateKeyBody()
    key = await create_api_key(
        admin,
        name=body.name,
        live=body.mode == "live",
        publisher=deps.resources.publisher,
        credentials=deps.store,
    )
    return json_response({**_issued(key), "name": body.name, "note": "shown once; stored only as a hash"}, 201)


@router.get("", response_model=KeyList)
async def list_keys(reader: WorkspaceReader, deps: Deps) -> Response:
    records = await deps.store.list_for_workspace(reader.workspace_id)
    keys = [
        {
            "apiKeyId": r["credential_id"],
            "prefix": r.get("display_prefix", ""),
            "name": r.get("name", ""),
            "createdAt": r.get("created_at"),
            "lastUsedAt": r.get("last_used_at"),
            "revoked": r.get("revoked") == "1",
            "revokedAt": r.get("revoked_at"),
        }
        for r in records
        if r.get("kind") == "api_key"
    ]
    return json_response({"workspaceId": reader.workspace_id, "apiKeys": keys})


@router.post("/{key_id}/rotate", status_code=201, response_model=IssuedKey)
async def rotate_key(admin: WorkspaceWriter, deps: Deps, key_id: str) -> Response:
    key = await rotate_api_key(admin, key_id, publisher=deps.resources.publisher, credentials=deps.store)
    return json_response({**_issued(key), "rotatedFrom": key_id}, 201)


@router.delete("/{key_id}", status_code=204, response_class=Response)
async def revoke_key(admin: WorkspaceWriter, deps: Deps, key_id: str) -> Response:
    await revoke_api_key(admin, key_id, publisher=deps.resources.publisher, credentials=deps.store)
    return Response(status_code=204)


tokens_router = APIRouter(prefix="/v1/workspaces/{workspace_id}/admin-tokens", tags=["api-keys"])


class CreateTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["admin", "member"]
    name: str = Field(default="", max_length=128)


@tokens_router.post("", status_code=201, response_model=IssuedAdminToken)
async def create_token(owner: WorkspaceWriter, deps: Deps, body: CreateTokenBody) -> Response:
    """Owner only: an admin token (may change settings) or a member token (may read)."""
    token = await create_admin_token(
        owner, body.role, name=body.name, publisher=deps.resources.publisher, credentials=deps.store
    )
    return json_response(
        {"adminTokenId": token.credential_id, "adminToken": token.plaintext, "role": body.role, "name": body.name},
        201,
    )
