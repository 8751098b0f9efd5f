"""The gateway's projections of workspace credentials, OpenTelemetry attribute names and workspace prices,
rebuilt from ``workspaces.events``."""

from collections.abc import Awaitable, Callable

from opsmeter_contracts.events import CredentialIssued, CredentialRevoked, OtelAttributesSet
from opsmeter_contracts.pricing import WorkspacePricesSet
from opsmeter_ingest.adapters.otel_attributes import OtelAttributeStore
from opsmeter_runtime.auth import CredentialStore, StoredCredential
from opsmeter_runtime.projections import WorkspacePricesProjection


async def on_credential_issued(event: CredentialIssued, *, credentials: CredentialStore) -> None:
    p = event.payload
    await credentials.save(
        event.workspace_id,
        StoredCredential(
            credential_id=p.credential_id,
            kind=p.kind,
            role=p.role,
            secret_sha256=p.secret_sha256,
            display_prefix=p.display_prefix,
        ),
        created_at=event.occurred_at,
        name=p.name,
        issued_by=p.issued_by,
    )


async def on_credential_revoked(event: CredentialRevoked, *, credentials: CredentialStore) -> None:
    await credentials.revoke(event.payload.credential_id, revoked_at=event.occurred_at)


async def on_otel_attributes_set(event: OtelAttributesSet, *, otel_attributes: OtelAttributeStore) -> None:
    await otel_attributes.save(event.workspace_id, event.payload)


async def on_workspace_prices_set(event: WorkspacePricesSet, *, workspace_prices: WorkspacePricesProjection) -> None:
    await workspace_prices.save(event.workspace_id, event.payload)


EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    CredentialIssued: [on_credential_issued],
    CredentialRevoked: [on_credential_revoked],
    OtelAttributesSet: [on_otel_attributes_set],
    WorkspacePricesSet: [on_workspace_prices_set],
}
