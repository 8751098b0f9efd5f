from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

PayloadT = TypeVar("PayloadT", bound=BaseModel)

WORKSPACE_ID_PATTERN = r"^ws_[0-9a-z]{8,40}$"


class Payload(BaseModel):
    """Base of every event payload: frozen, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EventEnvelope(BaseModel, Generic[PayloadT]):
    """What every event carries, whatever its payload. Subclasses pin ``type`` and ``version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    type: str
    version: int
    occurred_at: AwareDatetime
    ingested_at: AwareDatetime
    workspace_id: str = Field(pattern=WORKSPACE_ID_PATTERN)
    payload: PayloadT

    @field_validator("occurred_at", "ingested_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        from datetime import UTC

        return value.astimezone(UTC)

    @property
    def key(self) -> bytes:
        """The partition key: one workspace's events stay ordered."""
        return self.workspace_id.encode()
