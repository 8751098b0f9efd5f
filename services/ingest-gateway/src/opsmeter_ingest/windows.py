"""Rate-limit windows and the quota calendar (UTC months), as pure functions. No I/O."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class FixedWindow:
    """A per-minute counter aligned to the minute; the in-process fallback when Redis is away."""

    limit: int
    window: int = -1
    used: int = 0

    def take(self, now: float) -> bool:
        current = int(now // 60)
        if current != self.window:
            self.window, self.used = current, 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def continue_from(self, now: float, used: int) -> None:
        """Count on from ``used`` requests already taken in the window of ``now`` (elsewhere, e.g. Redis)."""
        current = int(now // 60)
        if current != self.window:
            self.window, self.used = current, 0
        self.used = max(self.used, used)

    @property
    def window_end(self) -> int:
        return (self.window + 1) * 60


def month_period(now: float) -> str:
    """The quota period (a calendar month, UTC) that ``now`` falls in, as ``YYYY-MM``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of a ``YYYY-MM`` period in UTC."""
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else datetime(year, month + 1, 1, tzinfo=UTC)
    return start, end


def retry_after_s(window_end: int, now: float) -> int:
    """Whole seconds until the window resets, at least 1."""
    return max(1, math.ceil(window_end - now))
