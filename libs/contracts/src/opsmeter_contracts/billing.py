"""Billing events: Lemon Squeezy deliveries as received, plan change requests, confirmed plan changes, alerts.

``billing.lemonsqueezy_webhook_received`` lives on ``billing.webhooks`` (billing's own log of verified
deliveries); the others on ``billing.subscriptions`` for any consumer.
"""

from typing import Literal

from pydantic import AwareDatetime, Field

from opsmeter_contracts.envelope import EventEnvelope, Payload
from opsmeter_contracts.events import Plan
from opsmeter_contracts.registry import event

UNROUTED_WORKSPACE_ID = "ws_unassigned"
"""Partition key of a delivery whose subscription maps to no workspace yet; billing decides when it applies it."""


class LemonSqueezyWebhookReceivedPayload(Payload):
    """A delivery whose signature verified, stored before Lemon Squeezy gets its 200."""

    event_name: str = Field(max_length=128, description="meta.event_name, e.g. subscription_updated.")
    body: str = Field(description="The raw body as received (UTF-8); its hash is the delivery id.")
    body_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    test_mode: bool


@event
class LemonSqueezyWebhookReceived(EventEnvelope[LemonSqueezyWebhookReceivedPayload]):
    type: Literal["billing.lemonsqueezy_webhook_received"] = "billing.lemonsqueezy_webhook_received"
    version: Literal[1] = 1


class PlanChangeRequestedPayload(Payload):
    """Lemon Squeezy accepted a variant change; the plan changes only when its webhook confirms."""

    subscription_id: str = Field(min_length=1, max_length=64)
    from_plan: Plan
    to_plan: Plan
    variant_id: int
    requested_by: str = Field(max_length=64, description="The admin credential id that asked.")


@event
class PlanChangeRequested(EventEnvelope[PlanChangeRequestedPayload]):
    type: Literal["billing.plan_change_requested"] = "billing.plan_change_requested"
    version: Literal[1] = 1


class PlanChangedPayload(Payload):
    """The workspace's plan changed (confirmed by Lemon Squeezy, or set or linked by an operator)."""

    from_plan: Plan
    to_plan: Plan
    rate_limit_per_minute: int | None = Field(description="None: no per-minute limit.")
    monthly_request_quota: int | None = Field(description="None: unlimited.")
    subscription_id: str | None = None
    source: Literal["webhook", "reconciliation", "operator_link", "operator"] = Field(
        description="operator_link: a subscription linked by an operator; operator: workspace.plan_set."
    )
    lemonsqueezy_updated_at: AwareDatetime | None = None


@event
class PlanChanged(EventEnvelope[PlanChangedPayload]):
    type: Literal["billing.plan_changed"] = "billing.plan_changed"
    version: Literal[1] = 1


class BillingAlertRaisedPayload(Payload):
    """Something in billing needs a human: an unmapped variant, or a delivery that tried to move a subscription."""

    kind: Literal["unknown_variant", "subscription_reassignment_rejected"]
    subscription_id: str = Field(max_length=64)
    detail: str = Field(max_length=512)


@event
class BillingAlertRaised(EventEnvelope[BillingAlertRaisedPayload]):
    type: Literal["billing.alert_raised"] = "billing.alert_raised"
    version: Literal[1] = 1
