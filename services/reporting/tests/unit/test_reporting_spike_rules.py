from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from opsmeter_reporting.domain import (
    Breakdown,
    BreakdownRow,
    InvalidRange,
    Retention,
    Segment,
    SpikeRule,
    Totals,
    TrackingFacts,
    UsageWindow,
    analyse_spike,
    decompose,
    onboarding_checklist,
    parse_range_bound,
    quality_parts,
    quality_score,
    read_plan,
    retention_applied,
    spike_transition,
    spike_windows,
    weekly_windows,
)
from opsmeter_runtime.projections import plan_at_least

T0 = datetime(2026, 11, 2, tzinfo=UTC)


def t(requests: int, cost: int) -> Totals:
    return Totals(requests=requests, cost_micro_usd=cost)


class TestReadPlan:
    def test_whole_days_hours_and_raw_edges(self) -> None:
        window = UsageWindow(T0 + timedelta(hours=22, minutes=30), T0 + timedelta(days=3, hours=2, minutes=5))
        assert read_plan(window) == [
            Segment("raw", window.start, T0 + timedelta(hours=23)),
            Segment("hour", T0 + timedelta(hours=23), T0 + timedelta(days=1)),
            Segment("day", T0 + timedelta(days=1), T0 + timedelta(days=3)),
            Segment("hour", T0 + timedelta(days=3), T0 + timedelta(days=3, hours=2)),
            Segment("raw", T0 + timedelta(days=3, hours=2), window.end),
        ]

    def test_inside_one_hour_only_raw_rows(self) -> None:
        window = UsageWindow(T0 + timedelta(minutes=5), T0 + timedelta(minutes=50))
        assert read_plan(window) == [Segment("raw", window.start, window.end)]

    def test_aligned_windows_have_no_raw_piece(self) -> None:
        assert [s.grain for s in read_plan(UsageWindow(T0, T0 + timedelta(days=7)))] == ["day"]


class TestDecomposition:
    def test_volume_unit_cost_and_mix_add_up_to_the_change(self) -> None:
        before = {"a": t(100, 10_000), "b": t(50, 25_000)}
        after = {"a": t(120, 14_400), "b": t(90, 40_000), "c": t(7, 70_001)}
        d = decompose(after, before)
        assert d.total_micro_usd == (14_400 + 40_000 + 70_001) - (10_000 + 25_000)
        assert d.unit_cost_micro_usd == round(120 * (Fraction(14_400, 120) - 100) + 90 * (Fraction(40_000, 90) - 500))

    def test_pure_volume_growth_is_all_volume(self) -> None:
        d = decompose({"a": t(200, 20_000)}, {"a": t(100, 10_000)})
        assert (d.volume_micro_usd, d.unit_cost_micro_usd, d.mix_micro_usd) == (10_000, 0, 0)

    def test_nothing_before_or_after(self) -> None:
        assert decompose({"a": t(3, 30)}, {}).total_micro_usd == 30
        assert decompose({}, {"a": t(3, 30)}).total_micro_usd == -30
        assert decompose({}, {}).total_micro_usd == 0


class TestAnalyseSpike:
    def test_a_falling_cost_ranks_the_biggest_fall_first(self) -> None:
        rows = [
            BreakdownRow("prev", "total", "", t(10, 1_000)),
            BreakdownRow("cur", "total", "", t(10, 400)),
            BreakdownRow("prev", "model", "a", t(5, 800)),
            BreakdownRow("cur", "model", "a", t(5, 200)),
            BreakdownRow("prev", "model", "b", t(5, 200)),
            BreakdownRow("cur", "model", "b", t(5, 200)),
        ]
        w = UsageWindow(T0, T0 + timedelta(hours=1))
        analysis = analyse_spike(Breakdown.of(rows), w, w.previous())
        assert [(d.key, d.share_of_change) for d in analysis.drivers["model"]] == [
            ("a", Fraction(1)),
            ("b", Fraction(0)),
        ]


class TestSpikeDetection:
    def test_one_decision_per_spike(self) -> None:
        active = False
        emitted = []
        for passes in [False, True, True, True, False, True]:
            emit, active = spike_transition(active, passes)
            emitted.append(emit)
        assert emitted == [False, True, False, False, False, True]

    def test_the_rule_needs_both_ratio_and_amount(self) -> None:
        w = UsageWindow(T0, T0 + timedelta(hours=1))

        def analysis(before: int, after: int) -> object:
            rows = [BreakdownRow("prev", "total", "", t(1, before)), BreakdownRow("cur", "total", "", t(1, after))]
            return analyse_spike(Breakdown.of(rows), w, w.previous())

        rule = SpikeRule(Fraction(1, 2), 1_000_000)
        assert rule.passes(analysis(2_000_000, 3_000_000))  # type: ignore[arg-type]
        assert not rule.passes(analysis(2_000_000, 2_900_000))  # type: ignore[arg-type]
        assert not rule.passes(analysis(100, 900_000))  # type: ignore[arg-type]
        assert rule.passes(analysis(0, 1_000_000))  # type: ignore[arg-type]


class TestWindows:
    @pytest.mark.parametrize(
        ("now", "start"),
        [
            (datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC)),  # Monday 00:00
            (datetime(2026, 11, 15, 23, 59, 59, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC)),
            (datetime(2026, 11, 18, 13, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)),
        ],
    )
    def test_weekly_is_the_last_completed_seven_utc_days(self, now: datetime, start: datetime) -> None:
        current, previous = weekly_windows(now)
        assert (current.start, current.end) == (start, start + timedelta(days=7))
        assert (previous.start, previous.end) == (start - timedelta(days=7), start)

    def test_spike_windows(self) -> None:
        current, previous = spike_windows("7d", None, None, now=T0)
        assert (current.start, previous.start, previous.end) == (
            T0 - timedelta(days=7),
            T0 - timedelta(days=14),
            current.start,
        )
        with pytest.raises(InvalidRange):
            spike_windows("1h", T0, None, now=T0)

    def test_board_pack_dates_are_whole_days_with_to_included(self) -> None:
        assert parse_range_bound("2026-11-02", end=False) == T0
        assert parse_range_bound("2026-11-02", end=True) == T0 + timedelta(days=1)
        assert parse_range_bound("2026-11-02T01:00:00+01:00", end=True) == T0
        with pytest.raises(InvalidRange):
            parse_range_bound("2026-11-02T01:00:00", end=True)

    def test_retention_window_applied_before_the_raw_window(self) -> None:
        now = T0 + timedelta(hours=5)
        assert retention_applied(UsageWindow(T0 - timedelta(days=15), now), Retention(14, 90), now=now)
        assert not retention_applied(UsageWindow(now - timedelta(days=14), now), Retention(14, 90), now=now)

    def test_a_range_starting_earlier_today_fourteen_days_ago_lost_rows_and_says_so(self) -> None:
        # Raw rows expire 14 days after their own time: at 05:00 those before 05:00 fourteen days ago are gone.
        now = T0 + timedelta(hours=5)
        assert retention_applied(UsageWindow(T0 - timedelta(days=14), now), Retention(14, 90), now=now)
        assert retention_applied(UsageWindow(now - timedelta(days=14, seconds=1), now), Retention(14, 90), now=now)


class TestPlansAndQuality:
    def test_plan_order(self) -> None:
        assert plan_at_least("team", "pro")
        assert not plan_at_least("free", "starter")
        assert plan_at_least("pro", "pro")

    def test_a_perfect_workspace_scores_100_and_an_empty_one_0(self) -> None:
        perfect = TrackingFacts(10, 10, 10, 10, 10, 10, 0, 2.0, any_mode_events=10)
        assert quality_score(quality_parts(perfect)) == 100
        assert all(i.done for i in onboarding_checklist(perfect))
        empty = TrackingFacts(0, 0, 0, 0, 0, 0, 0, None)
        assert quality_score(quality_parts(empty)) == 0
        assert [i.id for i in onboarding_checklist(empty) if i.done] == ["workspace_created"]

    def test_each_part_has_a_tip_and_the_weights_total_100(self) -> None:
        parts = quality_parts(TrackingFacts(4, 2, 4, 0, 4, 4, 0, 30.0))
        assert sum(p.weight for p in parts) == 100
        assert all(p.tip for p in parts)
        assert quality_score(parts) == 100 - 10 - 15
