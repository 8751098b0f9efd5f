from datetime import UTC, datetime
from typing import Generic, Self, TypeVar
from uuid import UUID, uuid4

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
        return value.astimezone(UTC)

    @classmethod
    def new(cls, workspace_id: str, payload: PayloadT, *, at: datetime | None = None) -> Self:
        """A fresh event (new id) that happened and was recorded ``at`` (default now)."""
        moment = at or datetime.now(UTC)
        fields = {"event_id": uuid4(), "occurred_at": moment, "ingested_at": moment, "workspace_id": workspace_id}
        return cls.model_validate({**fields, "payload": payload})

    @property
    def key(self) -> bytes:
        """The partition key: one workspace's events stay ordered."""
        return self.workspace_id.encode()
