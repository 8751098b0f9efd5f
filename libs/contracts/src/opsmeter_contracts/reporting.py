"""Decisions reporting emits on ``policy.decisions`` (one stream of decisions for alerting, ADR 0032)."""

from typing import Literal

from pydantic import AwareDatetime, Field

from opsmeter_contracts.envelope import EventEnvelope, Payload
from opsmeter_contracts.registry import event


class SpikeDriverPayload(Payload):
    dimension: Literal["model", "provider", "endpointTag", "userId", "promptVersion"]
    key: str = Field(max_length=128)
    cost_delta_micro_usd: int
    is_new: bool


class SpikeDetectedPayload(Payload):
    """A workspace's cost over ``window`` rose past the threshold against the window just before it."""

    window: Literal["1h", "24h", "7d", "30d"]
    current_from: AwareDatetime
    current_to: AwareDatetime
    current_cost_micro_usd: int = Field(ge=0)
    previous_cost_micro_usd: int = Field(ge=0)
    cost_delta_micro_usd: int
    min_increase_ratio: str = Field(description="The threshold that was passed, as a decimal string.")
    top_drivers: list[SpikeDriverPayload] = Field(max_length=10)


@event
class SpikeDetected(EventEnvelope[SpikeDetectedPayload]):
    type: Literal["reporting.spike_detected"] = "reporting.spike_detected"
    version: Literal[1] = 1
