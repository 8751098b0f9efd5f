"""What the console reads beyond the usage report: a cost series stacked by model or provider, and raw events."""

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from opsmeter_reporting.domain import Dimension, InvalidRange, UsageWindow

SeriesBucket = Literal["hour", "day"]
StackBy = Literal["model", "provider"]
STACK_COLUMNS: dict[StackBy, str] = {"model": "model_normalized", "provider": "toString(provider)"}
EVENT_FILTER_COLUMNS: dict[Dimension, str] = {
    "model": "model_normalized",
    "provider": "provider",
    "endpointTag": "endpoint_tag",
    "userId": "user_id",
    "promptVersion": "prompt_version",
}
MAX_HOURLY_BUCKETS = 24 * 31


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SeriesPoint:
    bucket: datetime
    key: str
    requests: int
    errors: int
    total_tokens: int
    cost_micro_usd: int


def series_bucket(window: UsageWindow, wanted: SeriesBucket | None) -> SeriesBucket:
    """Hours up to two days, days beyond; an hourly series longer than a month is refused."""
    if wanted is None:
        return "hour" if window.duration.total_seconds() <= 2 * 86_400 else "day"
    if wanted == "hour" and window.duration.total_seconds() > MAX_HOURLY_BUCKETS * 3600:
        raise InvalidRange("an hourly series covers at most 31 days", "bucket")
    return wanted


@dataclass(frozen=True)
class EventsQuery:
    window: UsageWindow
    data_mode: str
    limit: int
    dimension: Dimension | None = None
    key: str = ""
    before: tuple[datetime, str] | None = None


def encode_cursor(occurred_at: datetime, event_id: str) -> str:
    """The page cursor: the last event's time and id (events are ordered newest first by both)."""
    raw = f"{aware(occurred_at).isoformat()}|{event_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, event_id = raw.split("|", 1)
        at = datetime.fromisoformat(moment)
    except ValueError:
        raise InvalidRange("before is not a cursor this API gave out", "before") from None
    if at.tzinfo is None or not event_id:
        raise InvalidRange("before is not a cursor this API gave out", "before")
    return at, event_id
