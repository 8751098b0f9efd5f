"""The gateway's projection of workspace credentials, rebuilt from ``workspaces.events``."""

from collections.abc import Awaitable, Callable

from opsmeter_contracts import CredentialIssued
from opsmeter_runtime.auth import CredentialStore, StoredCredential


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
    )


EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    CredentialIssued: [on_credential_issued],
}
