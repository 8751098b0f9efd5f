"""Settings changes: the one place a workspace's policy is changed (API) and turned into an event."""

import uuid
from datetime import UTC, datetime
from typing import Any

from opsmeter_contracts import Topics
from opsmeter_contracts.policy import PolicySettingsChanged, PolicySettingsPayload, SettingsSection
from opsmeter_policy.domain import with_model_scopes
from opsmeter_policy.evaluator import PolicyEvaluator
from opsmeter_runtime.auth import Principal


async def change_settings(
    evaluator: PolicyEvaluator, principal: Principal, section: SettingsSection, changes: dict[str, Any]
) -> PolicySettingsPayload:
    """Publish the next snapshot on the compacted settings topic (acks=all), then apply it here at once.

    Serialised per workspace, so two concurrent changes of different sections never lose each other. A model
    scope is saved as the ``model_normalized`` it counts, so the answer shows what will be matched (ADR 68).
    """
    workspace_id = principal.workspace_id
    async with evaluator.settings.locked(workspace_id):
        current = await evaluator.settings_of(workspace_id)
        snapshot = with_model_scopes(
            PolicySettingsPayload.model_validate(
                {
                    **current.model_dump(),
                    **changes,
                    "version": current.version + 1,
                    "changed_sections": (section,),
                    "changed_by_credential_id": principal.credential_id,
                    "changed_by_role": principal.role,
                }
            )
        )
        now = datetime.now(UTC)
        event = PolicySettingsChanged(
            event_id=uuid.uuid4(), occurred_at=now, ingested_at=now, workspace_id=workspace_id, payload=snapshot
        )
        await evaluator.publisher.publish(Topics.POLICY_SETTINGS, event)
        await evaluator.apply_settings(event)
    return snapshot
