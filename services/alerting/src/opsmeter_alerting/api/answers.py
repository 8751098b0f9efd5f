"""The JSON the alerting API answers with, as models: its OpenAPI schema documents them."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from opsmeter_alerting.domain import ChannelType, Family, Mode, Schedule, Severity
from opsmeter_runtime.projections import PlanTier


class _Answer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class PublicChannel(_Answer):
    """A channel as GET shows it: a webhook's secret and a Slack URL only as a masked hint."""

    model_config = ConfigDict(extra="allow")

    type: ChannelType
    id: str
    enabled: bool
    url: str | None = None
    to: list[str] | None = None
    secret_hint: str | None = Field(default=None, alias="secretHint")
    url_hint: str | None = Field(default=None, alias="urlHint")


class AlertSettingsAnswer(_Answer):
    modes: dict[Family, Mode]
    schedule: Schedule
    cooldown_seconds: int = Field(alias="cooldownSeconds")
    weekly_executive_report: bool = Field(alias="weeklyExecutiveReport")
    channels: list[PublicChannel]
    version: int


class Attempt(_Answer):
    model_config = ConfigDict(extra="allow")

    attempt: int


class Delivery(_Answer):
    model_config = ConfigDict(extra="allow")

    delivery_id: str = Field(alias="deliveryId")
    channel_id: str = Field(alias="channelId")
    channel_type: ChannelType = Field(alias="channelType")
    status: str
    attempts: list[Attempt]


class Alert(_Answer):
    model_config = ConfigDict(extra="allow")

    alert_id: str = Field(alias="alertId")
    family: str
    rule: str
    scope: str
    severity: Severity
    title: str
    lines: list[str]
    facts: dict[str, Any] | list[Any] | None = None
    created_at: str = Field(alias="createdAt")
    status: str = Field(
        description="queued, delivering, delivered, dead_lettered, suppressed, held_for_summary, no_channels, "
        "or plan_required (recorded, not delivered: the workspace's plan is below requiredPlan)"
    )
    required_plan: PlanTier | None = Field(default=None, alias="requiredPlan")
    deliveries: list[Delivery]


class AlertLogAnswer(_Answer):
    alerts: list[Alert]


class SentTestAlert(_Answer):
    alert_id: str = Field(alias="alertId")
    channels: list[str]


class ReplayAnswer(_Answer):
    replayed: list[str]
