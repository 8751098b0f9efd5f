"""Alerting events on ``alerting.events``: settings changes (audit trail, never secrets) and dead letters."""

from typing import Literal

from pydantic import Field

from opsmeter_contracts.envelope import EventEnvelope, Payload
from opsmeter_contracts.registry import event

ChannelType = Literal["webhook", "slack", "email"]


class AlertChannelState(Payload):
    channel_id: str = Field(max_length=40)
    type: ChannelType
    enabled: bool


class AlertSettingsChangedPayload(Payload):
    """A workspace's alert settings at ``version``: modes, schedule, cooldown and channels (no URLs, no secrets)."""

    version: int = Field(ge=1)
    modes: dict[str, Literal["immediate", "daily_summary", "weekly_summary"]]
    send_time: str = Field(pattern=r"^\d{2}:\d{2}$")
    timezone: str = Field(max_length=64)
    cooldown_seconds: int = Field(ge=0)
    weekly_executive_report: bool
    channels: tuple[AlertChannelState, ...]
    reason: Literal["changed_by_admin", "channel_disabled_after_failures"]
    changed_by_credential_id: str = Field(max_length=64)
    changed_by_role: Literal["owner", "admin", "member", "ingest", "system"]


@event
class AlertSettingsChanged(EventEnvelope[AlertSettingsChangedPayload]):
    type: Literal["alerting.settings_changed"] = "alerting.settings_changed"
    version: Literal[1] = 1


class AlertDeliveryDeadLetteredPayload(Payload):
    """One alert could not reach one channel after its attempts; it is kept and can be replayed."""

    alert_id: str = Field(max_length=64)
    delivery_id: str = Field(max_length=120)
    channel_id: str = Field(max_length=40)
    channel_type: ChannelType
    attempts: int = Field(ge=1)
    last_error: str = Field(max_length=512)


@event
class AlertDeliveryDeadLettered(EventEnvelope[AlertDeliveryDeadLetteredPayload]):
    type: Literal["alerting.delivery_dead_lettered"] = "alerting.delivery_dead_lettered"
    version: Literal[1] = 1
