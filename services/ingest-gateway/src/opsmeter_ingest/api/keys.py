"""Ingest API keys of a workspace (create, list, rotate, revoke; owner or admin) and its admin and member tokens
(issue, list, rotate, revoke; owner only)."""

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from opsmeter_ingest.api.answers import AdminTokenList, IssuedAdminToken, IssuedKey, KeyList
from opsmeter_ingest.api.deps import Deps, WorkspaceReader, WorkspaceWriter
from opsmeter_ingest.commands import (
    create_admin_token,
    create_api_key,
    list_admin_tokens,
    revoke_admin_token,
    revoke_api_key,
    rotate_admin_token,
    rotate_api_key,
)
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


def _listed(record: dict[str, str]) -> dict[str, Any]:
    """What a list shows of a stored credential: never its hash."""
    return {
        "prefix": record.get("display_prefix", ""),
        "name": record.get("name", ""),
        "createdAt": record.get("created_at"),
        "lastUsedAt": record.get("last_used_at"),
        "revoked": record.get("revoked") == "1",
        "revokedAt": record.get("revoked_at"),
    }


@router.get("", response_model=KeyList)
async def list_keys(reader: WorkspaceReader, deps: Deps) -> Response:
    records = await deps.store.list_for_workspace(reader.workspace_id)
    keys = [{"apiKeyId": r["credential_id"], **_listed(r)} for r in records if r.get("kind") == "api_key"]
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


@tokens_router.get("", response_model=AdminTokenList)
async def list_tokens(owner: WorkspaceWriter, deps: Deps) -> Response:
    """Owner only: every owner, admin and member token of the workspace, revoked ones included."""
    records = await list_admin_tokens(owner, deps.store)
    tokens = [{"adminTokenId": r["credential_id"], "role": r.get("role"), **_listed(r)} for r in records]
    return json_response({"workspaceId": owner.workspace_id, "adminTokens": tokens})


@tokens_router.post("/{token_id}/rotate", status_code=201, response_model=IssuedAdminToken)
async def rotate_token(owner: WorkspaceWriter, deps: Deps, token_id: str) -> Response:
    """Owner only: a new token with the same role and name; the old one stops working at once."""
    token = await rotate_admin_token(owner, token_id, publisher=deps.resources.publisher, credentials=deps.store)
    record = await deps.store.get(token.credential_id)
    return json_response(
        {
            "adminTokenId": token.credential_id,
            "adminToken": token.plaintext,
            "role": token.role,
            "name": record.get("name", ""),
            "rotatedFrom": token_id,
        },
        201,
    )


@tokens_router.delete("/{token_id}", status_code=204, response_class=Response)
async def revoke_token(owner: WorkspaceWriter, deps: Deps, token_id: str) -> Response:
    """Owner only: an admin or member token stops working at once (an owner token is rotated instead: 409)."""
    await revoke_admin_token(owner, token_id, publisher=deps.resources.publisher, credentials=deps.store)
    return Response(status_code=204)
