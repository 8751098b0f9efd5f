"""Commands the gateway's admin API runs; each publishes its events before it answers."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from opsmeter_contracts.events import (
    CredentialIssued,
    CredentialIssuedPayload,
    CredentialRevoked,
    CredentialRevokedPayload,
    OtelAttributesSet,
    OtelAttributesSetPayload,
    Plan,
    TelemetryDataDeleted,
    TelemetryDataDeletedPayload,
    WorkspaceCreated,
    WorkspaceCreatedPayload,
    WorkspacePlanSet,
    WorkspacePlanSetPayload,
)
from opsmeter_contracts.pricing import WorkspacePriceRow, WorkspacePricesSet, WorkspacePricesSetPayload
from opsmeter_contracts.topics import Topics
from opsmeter_ingest.adapters.otel_attributes import OtelAttributeStore
from opsmeter_ingest.otlp.mapping import AttributeNames
from opsmeter_ingest.ports import PriceBook
from opsmeter_runtime.auth import CredentialStore, IssuedCredential, Principal, Role, issue_credential, new_id
from opsmeter_runtime.errors import Conflict, Forbidden, NotFound, OpsmeterError
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.projections import WorkspacePricesProjection


@dataclass(frozen=True)
class CreateWorkspace:
    name: str
    plan: Plan
    rate_limit_per_minute: int | None = None
    monthly_request_quota: int | None = None


@dataclass(frozen=True)
class CreatedWorkspace:
    workspace_id: str
    api_key: IssuedCredential
    admin_token: IssuedCredential


async def create_workspace(
    command: CreateWorkspace, *, publisher: EventPublisher, credentials: CredentialStore
) -> CreatedWorkspace:
    """Issue the owner's admin token and a first ingest key; durable on Kafka before the answer."""
    workspace_id = new_id("ws_", 20)
    now = datetime.now(UTC)
    api_key = issue_credential("api_key", "ingest")
    admin_token = issue_credential("admin_token", "owner")
    created = WorkspaceCreated.new(
        workspace_id,
        WorkspaceCreatedPayload(
            name=command.name,
            plan=command.plan,
            rate_limit_per_minute=command.rate_limit_per_minute,
            monthly_request_quota=command.monthly_request_quota,
        ),
    )
    await publisher.publish(Topics.WORKSPACES, created)
    await _issue(workspace_id, admin_token, publisher=publisher, credentials=credentials, now=now)
    await _issue(
        workspace_id,
        api_key,
        publisher=publisher,
        credentials=credentials,
        now=now,
        name="default",
        issued_by=admin_token.credential_id,
    )
    return CreatedWorkspace(workspace_id, api_key, admin_token)


async def _issue(
    workspace_id: str,
    credential: IssuedCredential,
    *,
    publisher: EventPublisher,
    credentials: CredentialStore,
    now: datetime,
    name: str = "",
    issued_by: str | None = None,
) -> None:
    """Durable on Kafka first, then in the credential projection every gateway reads."""
    await publisher.publish(
        Topics.WORKSPACES,
        CredentialIssued.new(
            workspace_id,
            at=now,
            payload=CredentialIssuedPayload(
                credential_id=credential.credential_id,
                kind=credential.kind,
                role=credential.role,
                secret_sha256=credential.secret_sha256,
                display_prefix=credential.display_prefix,
                name=name,
                issued_by=issued_by,
            ),
        ),
    )
    await credentials.save(workspace_id, credential, created_at=now, name=name, issued_by=issued_by)


async def create_api_key(
    admin: Principal, *, name: str, live: bool, publisher: EventPublisher, credentials: CredentialStore
) -> IssuedCredential:
    key = issue_credential("api_key", "ingest", live=live)
    await _issue_by(admin, key, name=name, publisher=publisher, credentials=credentials)
    return key


async def _issue_by(
    issuer: Principal,
    credential: IssuedCredential,
    *,
    name: str,
    publisher: EventPublisher,
    credentials: CredentialStore,
) -> None:
    """Issue a credential on an admin's behalf (recorded as ``issued_by``)."""
    await _issue(
        issuer.workspace_id,
        credential,
        publisher=publisher,
        credentials=credentials,
        now=datetime.now(UTC),
        name=name,
        issued_by=issuer.credential_id,
    )


async def _own_api_key(admin: Principal, key_id: str, credentials: CredentialStore) -> dict[str, str]:
    """The stored record of an ingest key of the admin's own workspace; another workspace's is 'not found'."""
    record = await credentials.get(key_id)
    if not record or record.get("workspace_id") != admin.workspace_id or record.get("kind") != "api_key":
        raise NotFound("no such API key in this workspace")
    return record


async def _revoke(
    admin: Principal,
    credential_id: str,
    *,
    publisher: EventPublisher,
    credentials: CredentialStore,
    reason: Literal["revoked", "rotated"],
) -> None:
    """Durable on Kafka first, then in the projection: every service refuses it on its next check."""
    now = datetime.now(UTC)
    await publisher.publish(
        Topics.WORKSPACES,
        CredentialRevoked.new(
            admin.workspace_id,
            CredentialRevokedPayload(credential_id=credential_id, revoked_by=admin.credential_id, reason=reason),
            at=now,
        ),
    )
    await credentials.revoke(credential_id, revoked_at=now)


async def revoke_api_key(
    admin: Principal,
    key_id: str,
    *,
    publisher: EventPublisher,
    credentials: CredentialStore,
    reason: Literal["revoked", "rotated"] = "revoked",
) -> dict[str, str]:
    """Revoke an ingest key of the admin's own workspace; every gateway refuses it within its cache TTL."""
    record = await _own_api_key(admin, key_id, credentials)
    await _revoke(admin, key_id, publisher=publisher, credentials=credentials, reason=reason)
    return record


async def rotate_api_key(
    admin: Principal, key_id: str, *, publisher: EventPublisher, credentials: CredentialStore
) -> IssuedCredential:
    """A new key with the old one's name and mode; the old one is revoked."""
    record = await _own_api_key(admin, key_id, credentials)
    new_key = await create_api_key(
        admin,
        name=record.get("name", ""),
        live=record.get("display_prefix", "").startswith("om_live"),
        publisher=publisher,
        credentials=credentials,
    )
    await revoke_api_key(admin, key_id, publisher=publisher, credentials=credentials, reason="rotated")
    return new_key


async def set_plan(
    workspace_id: str,
    plan: Plan,
    *,
    rate_limit_per_minute: int | None,
    monthly_request_quota: int | None,
    publisher: EventPublisher,
) -> None:
    """An operator's plan change; billing projects it, and the gateway follows on its next request."""
    await publisher.publish(
        Topics.WORKSPACES,
        WorkspacePlanSet.new(
            workspace_id,
            WorkspacePlanSetPayload(
                plan=plan, rate_limit_per_minute=rate_limit_per_minute, monthly_request_quota=monthly_request_quota
            ),
        ),
    )


async def delete_telemetry(
    admin: Principal,
    data_mode: Literal["test", "demo"],
    scope: Literal["workspace", "mine"],
    *,
    publisher: EventPublisher,
    credentials: CredentialStore,
) -> list[str]:
    """Ask every store to drop this workspace's demo or test events (all, or those of the caller's keys)."""
    key_ids: list[str] = []
    if scope == "mine":
        key_ids = [
            r["credential_id"]
            for r in await credentials.list_for_workspace(admin.workspace_id)
            if r.get("kind") == "api_key" and r.get("issued_by") == admin.credential_id
        ]
    await publisher.publish(
        Topics.TELEMETRY,
        TelemetryDataDeleted.new(
            admin.workspace_id,
            TelemetryDataDeletedPayload(
                data_mode=data_mode, scope=scope, api_key_ids=key_ids, requested_by=admin.credential_id
            ),
        ),
    )
    return key_ids


async def create_admin_token(
    owner: Principal,
    role: Literal["admin", "member"],
    *,
    name: str,
    publisher: EventPublisher,
    credentials: CredentialStore,
) -> IssuedCredential:
    """An admin (may change settings) or member (may read) token, issued by the workspace's owner."""
    if owner.role != "owner":
        raise Forbidden("only the workspace owner issues admin and member tokens")
    token = issue_credential("admin_token", role)
    await _issue_by(owner, token, name=name, publisher=publisher, credentials=credentials)
    return token


ADMIN_ROLES: dict[str, Role] = {"owner": "owner", "admin": "admin", "member": "member"}


async def _own_admin_token(owner: Principal, token_id: str, credentials: CredentialStore) -> dict[str, str]:
    """The stored record of an owner, admin or member token of the owner's own workspace."""
    if owner.role != "owner":
        raise Forbidden("only the workspace owner lists, rotates and revokes admin and member tokens")
    record = await credentials.get(token_id)
    if (
        record.get("workspace_id") != owner.workspace_id
        or record.get("kind") != "admin_token"
        or record.get("role") not in ADMIN_ROLES
    ):
        raise NotFound("no such admin token in this workspace")
    return record


async def list_admin_tokens(owner: Principal, credentials: CredentialStore) -> list[dict[str, str]]:
    """The workspace's owner, admin and member tokens (ids, names and dates; never a secret or its hash)."""
    if owner.role != "owner":
        raise Forbidden("only the workspace owner lists admin and member tokens")
    records = await credentials.list_for_workspace(owner.workspace_id)
    return [r for r in records if r.get("kind") == "admin_token"]


async def revoke_admin_token(
    owner: Principal, token_id: str, *, publisher: EventPublisher, credentials: CredentialStore
) -> None:
    """An admin or member token stops working at once: admin tokens are checked uncached by every service."""
    record = await _own_admin_token(owner, token_id, credentials)
    if record.get("role") == "owner":
        raise Conflict("an owner token is rotated, not revoked: the workspace would be left without an owner")
    await _revoke(owner, token_id, publisher=publisher, credentials=credentials, reason="revoked")


async def rotate_admin_token(
    owner: Principal, token_id: str, *, publisher: EventPublisher, credentials: CredentialStore
) -> IssuedCredential:
    """A new token with the old one's role and name; the old one is revoked (the owner's own one too)."""
    record = await _own_admin_token(owner, token_id, credentials)
    token = issue_credential("admin_token", ADMIN_ROLES[record.get("role", "")])
    await _issue_by(owner, token, name=record.get("name", ""), publisher=publisher, credentials=credentials)
    await _revoke(owner, token_id, publisher=publisher, credentials=credentials, reason="rotated")
    return token


async def set_otel_attributes(
    admin: Principal,
    names: AttributeNames,
    *,
    publisher: EventPublisher,
    store: OtelAttributeStore,
) -> OtelAttributesSetPayload:
    """Where the workspace's spans say their endpoint tag, user and prompt version; durable on Kafka first."""
    payload = OtelAttributesSetPayload(
        endpoint_tag_attributes=names.endpoint_tag,
        endpoint_tag_from_root_span=names.endpoint_tag_from_root_span,
        user_id_attributes=names.user_id,
        prompt_version_attributes=names.prompt_version,
        changed_by=admin.credential_id,
    )
    await publisher.publish(Topics.WORKSPACES, OtelAttributesSet.new(admin.workspace_id, payload))
    await store.save(admin.workspace_id, payload)
    return payload


class PricesChangedMeanwhile(OpsmeterError):
    status_code = 409
    reason = "conflict"


async def set_workspace_prices(
    admin: Principal,
    rows: list[WorkspacePriceRow],
    reason: str,
    *,
    publisher: EventPublisher,
    projection: WorkspacePricesProjection,
    prices: PriceBook,
) -> WorkspacePricesSetPayload:
    """Replace the workspace's own price list: published (durable) first, then projected, then used here at once."""
    if admin.role not in ("owner", "admin"):
        raise Forbidden("only the workspace owner or an admin sets prices")
    current = await projection.get(admin.workspace_id)
    payload = WorkspacePricesSetPayload(
        version=(current.version if current else 0) + 1,
        prices=tuple(rows),
        changed_by_credential_id=admin.credential_id,
        changed_by_role="owner" if admin.role == "owner" else "admin",
        reason=reason,
    )
    await publisher.publish(Topics.WORKSPACES, WorkspacePricesSet.new(admin.workspace_id, payload))
    if not await projection.save(admin.workspace_id, payload):
        raise PricesChangedMeanwhile("the workspace's prices changed meanwhile; read them and try again")
    prices.set_workspace_prices(admin.workspace_id, payload)
    return payload
