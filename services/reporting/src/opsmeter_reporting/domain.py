"""Pure reporting rules: usage windows and grouping. No I/O."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

GroupBy = Literal["day", "model", "endpointTag", "userId"]

GROUP_COLUMNS: dict[GroupBy, str] = {
    "day": "toString(toDate(occurred_at))",
    "model": "model_normalized",
    "endpointTag": "endpoint_tag",
    "userId": "user_id",
}

MAX_RANGE = timedelta(days=800)


class InvalidRange(ValueError):
    pass


@dataclass(frozen=True)
class UsageWindow:
    """A half-open UTC window ``[start, end)``."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, start: datetime | None, end: datetime | None, *, now: datetime) -> "UsageWindow":
        """Default: the last 30 days up to now. Both ends must carry an offset."""
        for name, value in (("from", start), ("to", end)):
            if value is not None and value.tzinfo is None:
                raise InvalidRange(f"{name} must carry a UTC offset, e.g. 2026-11-01T00:00:00Z")
        end_utc = (end or now).astimezone(UTC)
        start_utc = (start or end_utc - timedelta(days=30)).astimezone(UTC)
        if start_utc >= end_utc:
            raise InvalidRange("from must be before to")
        if end_utc - start_utc > MAX_RANGE:
            raise InvalidRange(f"the range must be at most {MAX_RANGE.days} days")
        return cls(start_utc, end_utc)


@dataclass(frozen=True)
class UsageRow:
    key: str
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_micro_usd: int
