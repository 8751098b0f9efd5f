"""The JSON the billing API answers with, as models: its OpenAPI schema documents them."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmeter_contracts.events import Plan


class _Answer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class WorkspacePlanAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    plan_tier: Plan = Field(alias="planTier")
    rate_limit_per_minute: int | None = Field(alias="rateLimitPerMinute")
    monthly_request_quota: int | None = Field(alias="monthlyRequestQuota")


class PendingChangeAnswer(_Answer):
    status: Literal["pending_webhook"]
    plan: Plan
    requested_at: str | None = Field(alias="requestedAt")


class SubscriptionAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    plan: Plan
    status: str | None
    subscription_id: str | None = Field(alias="subscriptionId")
    renews_at: str | None = Field(alias="renewsAt")
    ends_at: str | None = Field(alias="endsAt")
    updated_at: str | None = Field(alias="updatedAt")
    test_mode: bool = Field(alias="testMode")
    pending_change: PendingChangeAnswer | None = Field(alias="pendingChange")


class PlanChangePending(_Answer):
    status: Literal["pending_webhook"]
    workspace_id: str = Field(alias="workspaceId")
    subscription_id: str | None = Field(alias="subscriptionId")
    current_plan: Plan = Field(alias="currentPlan")
    requested_plan: Plan = Field(alias="requestedPlan")
    requested_at: str | None = Field(alias="requestedAt")
    message: str


class CheckoutAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    plan: Plan
    url: str = Field(description="Lemon Squeezy's checkout page; the plan changes when its webhook confirms.")


class PortalAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    url: str | None
    for_: list[Literal["payment_method", "invoices"]] = Field(alias="for")


class WebhookReceived(_Answer):
    status: Literal["received"]


class ReconcileAnswer(_Answer):
    scope: Literal["due", "all"]
    checked: int = Field(description="Subscriptions read from Lemon Squeezy in this run.")
    applied: int = Field(description="Of those, how many changed the workspace's billing state.")
    failed: int
    remaining: int = Field(
        description="Linked subscriptions still not read from Lemon Squeezy within the verify interval "
        "(OPSMETER_BILLING_VERIFY_EVERY_S); a run reads OPSMETER_BILLING_RECONCILE_BATCH at most, so call again."
    )


class AnyJson(BaseModel):
    """A webhook delivery: its bytes are checked against the signature before anything reads them."""

    model_config = ConfigDict(extra="allow")
