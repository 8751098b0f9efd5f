"""Pure budget rules: which spend windows an event falls in. No I/O."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class SpendWindow:
    """A half-open UTC window ``[start, end)`` with a stable name ("day:2026-11-25", "month:2026-11")."""

    name: str
    start: datetime
    end: datetime


def day_window(at: datetime) -> SpendWindow:
    start = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return SpendWindow(f"day:{start:%Y-%m-%d}", start, start + timedelta(days=1))


def month_window(at: datetime) -> SpendWindow:
    start = at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return SpendWindow(f"month:{start:%Y-%m}", start, end)


def counts_toward_budget(data_mode: str) -> bool:
    return data_mode == "real"
