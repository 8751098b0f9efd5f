"""Commands the gateway's admin API runs; each publishes its events before it answers."""

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from opsmeter_contracts import (
    CredentialIssued,
    CredentialIssuedPayload,
    Topics,
    WorkspaceCreated,
    WorkspaceCreatedPayload,
)
from opsmeter_contracts.events import Plan
from opsmeter_runtime.auth import CredentialStore, IssuedCredential, issue_credential, new_id
from opsmeter_runtime.kafka import EventPublisher


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
    created = WorkspaceCreated(
        event_id=uuid4(),
        occurred_at=now,
        ingested_at=now,
        workspace_id=workspace_id,
        payload=WorkspaceCreatedPayload(
            name=command.name,
            plan=command.plan,
            rate_limit_per_minute=command.rate_limit_per_minute,
            monthly_request_quota=command.monthly_request_quota,
        ),
    )
    await publisher.publish(Topics.WORKSPACES, created)
    for credential in (api_key, admin_token):
        await publisher.publish(
            Topics.WORKSPACES,
            CredentialIssued(
                event_id=uuid4(),
                occurred_at=now,
                ingested_at=now,
                workspace_id=workspace_id,
                payload=CredentialIssuedPayload(
                    credential_id=credential.credential_id,
                    kind=credential.kind,
                    role=credential.role,
                    secret_sha256=credential.secret_sha256,
                    display_prefix=credential.display_prefix,
                ),
            ),
        )
        await credentials.save(workspace_id, credential)
    return CreatedWorkspace(workspace_id, api_key, admin_token)
