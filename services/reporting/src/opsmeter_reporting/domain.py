"""Pure reporting rules: windows, read plans over raw/hourly/daily tiers, spike analysis, plan gates,
retention, the weekly window, onboarding and tracking quality. No I/O."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Literal
from uuid import UUID

from opsmeter_runtime.money import CostBasis
from opsmeter_runtime.projections import PlanTier

GroupBy = Literal["day", "model", "endpointTag", "userId"]

GROUP_COLUMNS: dict[GroupBy, str] = {
    "day": "toString(toDate(occurred_at))",
    "model": "model_normalized",
    "endpointTag": "endpoint_tag",
    "userId": "user_id",
}

MAX_RANGE = timedelta(days=800)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Times a query may name: ClickHouse's DateTime types cannot hold much beyond these."""


class InvalidRange(ValueError):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _require_offset(name: str, value: datetime | None) -> None:
    if value is None:
        return
    if value.tzinfo is None:
        raise InvalidRange(f"{name} must carry a UTC offset, e.g. 2026-11-01T00:00:00Z", name)
    if not EARLIEST <= value <= LATEST:
        raise InvalidRange(f"{name} must be from 1970-01-01 up to 2200-01-01 (UTC)", name)


@dataclass(frozen=True)
class UsageWindow:
    """A half-open UTC window ``[start, end)``."""

    start: datetime
    end: datetime

    @classmethod
    def parse(
        cls, start: datetime | None, end: datetime | None, *, now: datetime, default: timedelta = timedelta(days=30)
    ) -> "UsageWindow":
        """Default: the last 30 days up to now. Both ends must carry an offset."""
        _require_offset("from", start)
        _require_offset("to", end)
        end_utc = (end or now).astimezone(UTC)
        start_utc = (start or end_utc - default).astimezone(UTC)
        if start_utc >= end_utc:
            raise InvalidRange("from must be before to", "from")
        if end_utc - start_utc > MAX_RANGE:
            raise InvalidRange(f"the range must be at most {MAX_RANGE.days} days", "from")
        return cls(start_utc, end_utc)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> "UsageWindow":
        """The window of the same duration immediately before this one."""
        return UsageWindow(self.start - self.duration, self.start)


@dataclass(frozen=True)
class StoredCall:
    """A stored call as a re-pricing sees it: what priced it, and its computed cost after earlier corrections."""

    event_id: UUID
    occurred_at: datetime
    provider: str
    model: str
    model_normalized: str
    endpoint_tag: str
    user_id: str
    prompt_version: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int
    reasoning_tokens: int
    computed_cost_micro_usd: int
    had_reported_cost: bool
    cost_basis: CostBasis
    cache_write_1h_input_tokens: int = 0
    """Part of ``cache_write_input_tokens``: Anthropic's 1-hour writes, priced higher than 5-minute ones."""


@dataclass(frozen=True)
class UnpricedModel:
    model: str
    provider: str
    first_seen: datetime
    last_seen: datetime
    requests: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class UsageRow:
    key: str
    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_micro_usd: int
    """By the workspace's cost basis (ADR 57); the two costs it chose between follow."""
    computed_cost_micro_usd: int = 0
    reported_cost_micro_usd: int = 0
    reported_requests: int = 0
    computed_where_reported_micro_usd: int = 0
    """The computed cost of the requests that reported one: the reported cost's counterpart."""
    unpriced_requests: int = 0
    """Calls no price covered (stored at $0 computed) and not re-priced since."""


def parse_range_bound(value: str, *, end: bool) -> datetime:
    """A date (``2026-11-01``: the whole UTC day, so as ``to`` it is included) or a time with an offset."""
    name = "to" if end else "from"
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRange(f"{name} is neither a date (YYYY-MM-DD) nor a time with an offset", name) from None
    _require_offset(name, parsed)
    if len(value) == 10:
        return parsed + DAY if end else parsed
    return parsed.astimezone(UTC)


# --- reading tiers -------------------------------------------------------------------------------

Grain = Literal["raw", "hour", "day"]


@dataclass(frozen=True)
class Segment:
    """A piece of a window answered by one tier: raw rows, hourly rollups or daily summaries."""

    grain: Grain
    start: datetime
    end: datetime


def floor_to(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment.astimezone(UTC) - epoch) // step) * step


def ceil_to(moment: datetime, step: timedelta) -> datetime:
    floored = floor_to(moment, step)
    return floored if floored == moment else floored + step


def read_plan(window: UsageWindow) -> list[Segment]:
    """Whole days from daily summaries, whole hours from hourly rollups, the ragged edges from raw rows.

    Every tier holds exactly the same events, so the pieces add up to what the raw rows say.
    """
    start, end = window.start, window.end
    h0, h1 = ceil_to(start, HOUR), floor_to(end, HOUR)
    if h0 >= h1:
        return [Segment("raw", start, end)]
    d0, d1 = ceil_to(start, DAY), floor_to(end, DAY)
    if d0 < d1:
        pieces = [
            Segment("raw", start, h0),
            Segment("hour", h0, d0),
            Segment("day", d0, d1),
            Segment("hour", d1, h1),
            Segment("raw", h1, end),
        ]
    else:
        pieces = [Segment("raw", start, h0), Segment("hour", h0, h1), Segment("raw", h1, end)]
    return [p for p in pieces if p.start < p.end]


# --- breakdowns and spike analysis -----------------------------------------------------------------

Dimension = Literal["model", "provider", "endpointTag", "userId", "promptVersion"]
DIMENSIONS: tuple[Dimension, ...] = ("model", "provider", "endpointTag", "userId", "promptVersion")


def round_half_up(value: Fraction) -> int:
    """To the nearest integer, halves away from zero (ADR 8), as ``Decimal``'s ``ROUND_HALF_UP`` does."""
    magnitude = (2 * abs(value.numerator) + value.denominator) // (2 * value.denominator)
    return -magnitude if value < 0 else magnitude


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_micro_usd: int = 0

    def __add__(self, other: "Totals") -> "Totals":
        return Totals(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            self.cost_micro_usd + other.cost_micro_usd,
        )

    @property
    def cost_per_request(self) -> Fraction | None:
        return Fraction(self.cost_micro_usd, self.requests) if self.requests else None


@dataclass(frozen=True)
class BreakdownRow:
    """Sums of one period for one key of one dimension (``dimension == "total"`` for the whole period)."""

    period: str
    dimension: str
    key: str
    totals: Totals


@dataclass(frozen=True)
class Breakdown:
    """Per period: the totals and the totals per key of every dimension."""

    totals: dict[str, Totals] = field(default_factory=dict)
    by_key: dict[str, dict[Dimension, dict[str, Totals]]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Iterable[BreakdownRow]) -> "Breakdown":
        result = cls()
        for row in rows:
            if row.dimension == "total":
                result.totals[row.period] = result.totals.get(row.period, Totals()) + row.totals
            elif row.dimension in DIMENSIONS:
                keys = result.by_key.setdefault(row.period, {}).setdefault(row.dimension, {})
                keys[row.key] = keys.get(row.key, Totals()) + row.totals
        return result

    def total(self, period: str) -> Totals:
        return self.totals.get(period, Totals())

    def keys(self, period: str, dimension: Dimension) -> dict[str, Totals]:
        return self.by_key.get(period, {}).get(dimension, {})


@dataclass(frozen=True)
class Driver:
    dimension: Dimension
    key: str
    current: Totals
    previous: Totals
    share_of_change: Fraction | None
    """This key's cost delta over the total cost delta; None when the total did not change."""

    @property
    def cost_delta_micro_usd(self) -> int:
        return self.current.cost_micro_usd - self.previous.cost_micro_usd

    @property
    def is_new(self) -> bool:
        return self.previous.requests == 0 and self.current.requests > 0


@dataclass(frozen=True)
class Decomposition:
    """The cost change split into volume, unit cost and mix; the three add up to the total change exactly."""

    volume_micro_usd: int
    unit_cost_micro_usd: int
    mix_micro_usd: int

    @property
    def total_micro_usd(self) -> int:
        return self.volume_micro_usd + self.unit_cost_micro_usd + self.mix_micro_usd


def decompose(current: Mapping[str, Totals], previous: Mapping[str, Totals]) -> Decomposition:
    """Split the cost change over segments (models) into volume, unit cost and mix.

    With ``R`` requests, ``u_g`` cost per request of segment ``g`` and ``ū0`` the previous average:
    volume = (R1 − R0)·ū0, unit cost = Σ R1_g·(u1_g − u0_g), mix = Σ R1_g·u0_g − R1·ū0. A segment
    new in the current window keeps its own unit cost as ``u0`` (its cost is mix, not unit cost).
    Computed exactly in rationals, rounded to micro-USD; mix absorbs the rounding (≤ 1 micro-USD).
    """
    r0 = sum(t.requests for t in previous.values())
    r1 = sum(t.requests for t in current.values())
    c0 = sum(t.cost_micro_usd for t in previous.values())
    c1 = sum(t.cost_micro_usd for t in current.values())
    if r0 == 0 and r1 == 0:
        return Decomposition(0, 0, c1 - c0)
    avg0 = Fraction(c0, r0) if r0 else Fraction(c1, r1)
    volume = (r1 - r0) * avg0
    unit = Fraction(0)
    mix = -r1 * avg0
    for key, now in current.items():
        if now.requests == 0:
            continue
        before = previous.get(key, Totals())
        u1 = Fraction(now.cost_micro_usd, now.requests)
        u0 = Fraction(before.cost_micro_usd, before.requests) if before.requests else u1
        unit += now.requests * (u1 - u0)
        mix += now.requests * u0
    volume_i, unit_i = round(volume), round(unit)
    return Decomposition(volume_i, unit_i, (c1 - c0) - volume_i - unit_i)


@dataclass(frozen=True)
class SpikeAnalysis:
    current_window: UsageWindow
    previous_window: UsageWindow
    current: Totals
    previous: Totals
    drivers: dict[Dimension, list[Driver]]
    new_drivers: list[Driver]
    decomposition: Decomposition

    @property
    def cost_delta_micro_usd(self) -> int:
        return self.current.cost_micro_usd - self.previous.cost_micro_usd

    @property
    def cost_change_ratio(self) -> Fraction | None:
        """(current − previous) / previous cost; None when there was no previous cost."""
        if self.previous.cost_micro_usd == 0:
            return None
        return Fraction(self.cost_delta_micro_usd, self.previous.cost_micro_usd)

    def top_drivers(self, limit: int = 3) -> list[Driver]:
        """The strongest drivers across every dimension, by their contribution to the change."""
        everything = [d for ds in self.drivers.values() for d in ds]
        return sorted(everything, key=lambda d: _contribution(d, self.cost_delta_micro_usd), reverse=True)[:limit]


def _contribution(driver: Driver, total_delta: int) -> int:
    return driver.cost_delta_micro_usd * (-1 if total_delta < 0 else 1)


def analyse_spike(
    breakdown: Breakdown, current: UsageWindow, previous: UsageWindow, *, limit: int = 10
) -> SpikeAnalysis:
    """Compare period ``cur`` with ``prev``: drivers per dimension ranked by their part of the change."""
    cur_total, prev_total = breakdown.total("cur"), breakdown.total("prev")
    delta = cur_total.cost_micro_usd - prev_total.cost_micro_usd
    drivers: dict[Dimension, list[Driver]] = {}
    new: list[Driver] = []
    for dimension in DIMENSIONS:
        now, before = breakdown.keys("cur", dimension), breakdown.keys("prev", dimension)
        ranked = sorted(
            (
                Driver(
                    dimension,
                    key,
                    now.get(key, Totals()),
                    before.get(key, Totals()),
                    Fraction(now.get(key, Totals()).cost_micro_usd - before.get(key, Totals()).cost_micro_usd, delta)
                    if delta
                    else None,
                )
                for key in now.keys() | before.keys()
            ),
            key=lambda d: (-_contribution(d, delta), d.key),
        )
        drivers[dimension] = ranked[:limit]
        new.extend(d for d in ranked if d.is_new)
    new.sort(key=lambda d: (-d.current.cost_micro_usd, d.dimension, d.key))
    return SpikeAnalysis(
        current_window=current,
        previous_window=previous,
        current=cur_total,
        previous=prev_total,
        drivers=drivers,
        new_drivers=new[:limit],
        decomposition=decompose(breakdown.keys("cur", "model"), breakdown.keys("prev", "model")),
    )


SpikeWindowName = Literal["1h", "24h", "7d", "30d"]
SPIKE_WINDOWS: dict[SpikeWindowName, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def spike_windows(
    window: SpikeWindowName | None, start: datetime | None, end: datetime | None, *, now: datetime
) -> tuple[UsageWindow, UsageWindow]:
    """The current window (a named one ending now, or ``from``/``to``) and the one just before it."""
    if window is not None and (start is not None or end is not None):
        raise InvalidRange("use either window or from/to, not both", "window")
    if window is not None:
        current = UsageWindow(now - SPIKE_WINDOWS[window], now)
    elif start is None and end is None:
        current = UsageWindow(now - SPIKE_WINDOWS["24h"], now)
    else:
        current = UsageWindow.parse(start, end, now=now, default=SPIKE_WINDOWS["24h"])
    if current.duration > MAX_RANGE / 2:
        raise InvalidRange(f"the window must be at most {MAX_RANGE.days // 2} days", "from")
    return current, current.previous()


# --- spike detection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SpikeRule:
    """A spike: cost up by at least ``min_increase_ratio`` and by at least ``min_delta_micro_usd``."""

    min_increase_ratio: Fraction = Fraction(1, 2)
    min_delta_micro_usd: int = 1_000_000

    def passes(self, analysis: SpikeAnalysis) -> bool:
        delta = analysis.cost_delta_micro_usd
        if delta < self.min_delta_micro_usd:
            return False
        ratio = analysis.cost_change_ratio
        return ratio is None or ratio >= self.min_increase_ratio


def spike_transition(active: bool, passes: bool) -> tuple[bool, bool]:
    """(emit a decision now, spike active afterwards): one decision per spike, however many runs see it."""
    return passes and not active, passes


# --- plans and retention -------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    raw_days: int
    summary_days: int


RETENTION: dict[PlanTier, Retention] = {
    "free": Retention(14, 90),
    "starter": Retention(30, 180),
    "pro": Retention(90, 365),
    "team": Retention(180, 730),
    "enterprise": Retention(365, 1095),
}
"""SPEC §8; Enterprise's default until its policy says otherwise (ADR 0031)."""


def retention_applied(window: UsageWindow, retention: Retention, *, now: datetime) -> bool:
    """Whether the range starts before the raw window (older detail is gone or only in summaries): a raw row
    expires ``raw_days`` after its own time, not after its day."""
    return window.start < now - timedelta(days=retention.raw_days)


# --- weekly executive report -----------------------------------------------------------------------


def weekly_windows(now: datetime) -> tuple[UsageWindow, UsageWindow]:
    """The last completed 7 UTC days, and the 7 days before them."""
    end = floor_to(now, DAY)
    current = UsageWindow(end - WEEK, end)
    return current, current.previous()


# --- onboarding and tracking quality -------------------------------------------------------------


@dataclass(frozen=True)
class TrackingFacts:
    """What the raw rows of a workspace say about how it tracks (``data_mode=real``, a recent window)."""

    events: int
    with_endpoint_tag: int
    with_user_id: int
    with_prompt_version: int
    priced: int
    consistent_tokens: int
    duplicates: int
    freshness_p95_s: float | None
    first_event_at: datetime | None = None
    """The first event the workspace's retained rows hold, any data mode (not only the recent window)."""
    any_mode_events: int = 0
    models: int = 0
    received_any: bool = False
    """Whether any event was ever received (in the retained rows): the checklist's first steps stay done."""
    received_real: bool = False


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    title: str
    done: bool
    tip: str


def onboarding_checklist(facts: TrackingFacts) -> list[ChecklistItem]:
    def share(n: int) -> bool:
        return facts.events > 0 and n * 2 >= facts.events

    return [
        ChecklistItem("workspace_created", "Workspace and ingest API key created", True, "Done."),
        ChecklistItem(
            "first_event",
            "First telemetry event received",
            facts.received_any or facts.any_mode_events > 0,
            "Send one record after an LLM call: POST /v1/ingest/llm-request with your X-API-Key.",
        ),
        ChecklistItem(
            "first_real_event",
            "First production (dataMode=real) event received",
            facts.received_real or facts.events > 0,
            "Test and demo events do not count in reports; send dataMode=real (the default) from production.",
        ),
        ChecklistItem(
            "endpoint_tag",
            "Most events carry an endpointTag",
            share(facts.with_endpoint_tag),
            "Set endpointTag to the product feature the call served (e.g. checkout.ai_summary).",
        ),
        ChecklistItem(
            "user_id",
            "Most events carry a userId",
            share(facts.with_user_id),
            "Send a hashed end-user id as userId to see which users drive cost.",
        ),
        ChecklistItem(
            "prompt_version",
            "Most events carry a promptVersion",
            share(facts.with_prompt_version),
            "Send promptVersion so a prompt change that raises cost shows up as a driver.",
        ),
        ChecklistItem(
            "priced_models",
            "Every model is priced",
            facts.events > 0 and facts.priced == facts.events,
            "Send the provider's model name; see GET /v1/public/pricing-models for the known ones.",
        ),
    ]


@dataclass(frozen=True)
class QualityPart:
    id: str
    weight: int
    ratio: Fraction
    tip: str

    @property
    def points(self) -> Fraction:
        return self.weight * self.ratio


def _ratio(part: int, whole: int) -> Fraction:
    return Fraction(part, whole) if whole else Fraction(0)


def freshness_ratio(p95_s: float | None) -> Fraction:
    """Full marks when 95% of events arrive within a minute; none beyond an hour; linear between."""
    if p95_s is None:
        return Fraction(0)
    if p95_s <= 60:
        return Fraction(1)
    if p95_s >= 3600:
        return Fraction(0)
    return Fraction(3600 - round(p95_s), 3540)


def quality_parts(facts: TrackingFacts) -> list[QualityPart]:
    n = facts.events
    return [
        QualityPart(
            "endpointTag", 20, _ratio(facts.with_endpoint_tag, n), "Tag every call with the feature it served."
        ),
        QualityPart("userId", 15, _ratio(facts.with_user_id, n), "Send a hashed userId on every call."),
        QualityPart(
            "promptVersion", 15, _ratio(facts.with_prompt_version, n), "Send promptVersion whenever a prompt changes."
        ),
        QualityPart("pricedModels", 20, _ratio(facts.priced, n), "Use model names the price catalog knows."),
        QualityPart(
            "consistentTokens",
            10,
            _ratio(facts.consistent_tokens, n),
            "Report cachedInputTokens ≤ inputTokens and reasoningTokens ≤ outputTokens.",
        ),
        QualityPart(
            "duplicates",
            10,
            Fraction(1) - _ratio(min(facts.duplicates, n), n) if n else Fraction(0),
            "Give each LLM call its own externalRequestId and send it once.",
        ),
        QualityPart(
            "freshness",
            10,
            freshness_ratio(facts.freshness_p95_s),
            "Send telemetry right after the call (off the request path), not in nightly batches.",
        ),
    ]


def quality_score(parts: list[QualityPart]) -> int:
    return round(sum((p.points for p in parts), Fraction(0)))
