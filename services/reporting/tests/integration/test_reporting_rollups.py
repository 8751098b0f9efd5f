"""Rollups, spike investigation, weekly and board-pack reads on real ClickHouse, with data of known shape."""

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from services.reporting.tests.conftest import TelemetryFactory

from opsmeter_contracts import LlmRequestIngested
from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_reporting.domain import DAY, Breakdown, Retention, UsageWindow, floor_to, onboarding_checklist
from opsmeter_reporting.reports import board_pack, investigate, weekly_report
from opsmeter_runtime.clickhouse import ClickHouse
from opsmeter_runtime.projections import PolicyStatus

BASE = floor_to(datetime.now(UTC), DAY) - timedelta(days=8)
PREVIOUS = UsageWindow(BASE + timedelta(minutes=30), BASE + timedelta(days=3, minutes=30))
CURRENT = UsageWindow(PREVIOUS.end, PREVIOUS.end + PREVIOUS.duration)


def spread(window: UsageWindow, n: int) -> list[datetime]:
    """``n`` moments across the window, so raw edges, whole hours and whole days all hold some."""
    step = window.duration / n
    return [window.start + step * i + timedelta(seconds=7) for i in range(n)]


def planted(ws: str, telemetry: TelemetryFactory) -> list[LlmRequestIngested]:
    """100 steady chat calls in each window; in the current one also 50 new search.rerank calls on gpt-4o."""
    steady = [
        telemetry(ws, cost=1_000, at=at, endpoint_tag="chat", user_id=f"u_{i % 5}")
        for window in (PREVIOUS, CURRENT)
        for i, at in enumerate(spread(window, 100))
    ]
    spike = [
        telemetry(ws, cost=20_000, at=at, model="gpt-4o", endpoint_tag="search.rerank", user_id="u_big")
        for at in spread(CURRENT, 50)
    ]
    outside = [telemetry(ws, cost=999_999, at=PREVIOUS.start - timedelta(seconds=1))]
    outside.append(telemetry(ws, cost=999_999, at=CURRENT.end))
    return steady + spike + outside


async def raw_totals(clickhouse: ClickHouse, ws: str, window: UsageWindow) -> dict[str, Any]:
    [row] = await clickhouse.query(
        "SELECT count() AS requests, sum(cost_micro_usd) AS cost, sum(total_tokens) AS tokens "
        "FROM llm_requests_raw FINAL WHERE workspace_id = {ws:String} AND data_mode = 'real' "
        "AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}",
        {"ws": ws, "start": window.start, "end": window.end},
    )
    return {"requests": int(row["requests"]), "cost": int(row["cost"]), "tokens": int(row["tokens"])}


async def rollup_cost(clickhouse: ClickHouse, table: str, ws: str) -> int:
    [row] = await clickhouse.query(
        f"SELECT sum(cost_micro_usd) AS cost FROM {table} WHERE workspace_id = {{ws:String}}",
        {"ws": ws},
    )
    return int(row["cost"])


class TestInvestigateSpike:
    async def test_the_planted_driver_comes_first_with_exact_deltas_and_decomposition(
        self, store: ClickHouseTelemetryStore, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        await store.append(planted(ws, telemetry))

        analysis = await investigate(store, ws, CURRENT, PREVIOUS, "real")

        assert (analysis.previous.requests, analysis.previous.cost_micro_usd) == (100, 100_000)
        assert (analysis.current.requests, analysis.current.cost_micro_usd) == (150, 1_100_000)
        assert analysis.cost_delta_micro_usd == 1_000_000
        assert analysis.current.total_tokens - analysis.previous.total_tokens == 50 * 110
        top = analysis.drivers["endpointTag"][0]
        assert (top.key, top.cost_delta_micro_usd, top.share_of_change, top.is_new) == (
            "search.rerank",
            1_000_000,
            Fraction(1),
            True,
        )
        assert analysis.drivers["model"][0].key == "gpt-4o"
        assert analysis.drivers["userId"][0].key == "u_big"
        assert {(d.dimension, d.key) for d in analysis.new_drivers} == {
            ("model", "gpt-4o"),
            ("endpointTag", "search.rerank"),
            ("userId", "u_big"),
        }
        d = analysis.decomposition
        assert (d.volume_micro_usd, d.unit_cost_micro_usd, d.mix_micro_usd) == (50_000, 0, 950_000)
        assert d.total_micro_usd == analysis.cost_delta_micro_usd

    async def test_tiers_add_up_to_the_raw_rows_for_any_window(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        await store.append(planted(ws, telemetry))
        odd = UsageWindow(PREVIOUS.start + timedelta(hours=5, minutes=13), CURRENT.end - timedelta(minutes=47))
        rows = await store.breakdown(ws, {"range": odd}, "real")
        total = Breakdown.of(rows).total("range")
        assert {"requests": total.requests, "cost": total.cost_micro_usd, "tokens": total.total_tokens} == (
            await raw_totals(clickhouse, ws, odd)
        )


class TestRedelivery:
    async def test_a_redelivered_batch_changes_no_total(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        batch = planted(ws, telemetry)
        first = await store.append(batch)
        before = await investigate(store, ws, CURRENT, PREVIOUS, "real")

        again = await store.append(batch)
        await store.append([*batch[:7], telemetry(ws, cost=0, at=CURRENT.start)])

        after = await investigate(store, ws, CURRENT, PREVIOUS, "real")
        assert (first.inserted, again.inserted, again.redelivered) == (len(batch), 0, len(batch))
        assert again.repaired_days == 0  # nothing was missing
        assert (after.current.cost_micro_usd, after.previous.cost_micro_usd) == (1_100_000, 100_000)
        assert after.current.requests == before.current.requests + 1
        raw_cost = sum(e.payload.cost_micro_usd for e in batch)
        assert await rollup_cost(clickhouse, "llm_requests_hourly", ws) == raw_cost
        assert await rollup_cost(clickhouse, "llm_requests_daily", ws) == raw_cost

    async def test_a_redelivery_after_a_kill_between_raw_and_the_views_makes_the_rollups_whole(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        """ClickHouse inserts raw, then each view: a sink killed in between leaves raw rows the rollups never
        counted, and the redelivered batch finds them all stored already."""
        ws = f"ws_{unique}"
        batch = planted(ws, telemetry)
        await store.append(batch)
        lost_day = CURRENT.start.date()
        for table, bucket in (("llm_requests_hourly", "toDate(hour)"), ("llm_requests_daily", "day")):
            await clickhouse.command(
                f"ALTER TABLE {table} DELETE WHERE workspace_id = {{ws:String}} AND {bucket} = {{day:Date}} "
                "SETTINGS mutations_sync = 2",
                {"ws": ws, "day": lost_day},
            )
        raw_cost = sum(e.payload.cost_micro_usd for e in batch)
        assert await rollup_cost(clickhouse, "llm_requests_hourly", ws) < raw_cost

        again = await store.append(batch)

        assert (again.inserted, again.redelivered, again.repaired_days) == (0, len(batch), 1)
        assert await rollup_cost(clickhouse, "llm_requests_hourly", ws) == raw_cost
        assert await rollup_cost(clickhouse, "llm_requests_daily", ws) == raw_cost
        after = await investigate(store, ws, CURRENT, PREVIOUS, "real")
        assert (after.current.cost_micro_usd, after.previous.cost_micro_usd) == (1_100_000, 100_000)

    async def test_a_client_resend_is_counted_once_and_seen_as_a_duplicate(
        self, store: ClickHouseTelemetryStore, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        original = telemetry(ws, cost=500, at=CURRENT.start + timedelta(hours=2))
        resent = telemetry(ws, cost=500, at=original.occurred_at, event_id=original.event_id, delay=timedelta(days=1))
        await store.append([original])
        result = await store.append([resent])
        assert (result.inserted, result.resent) == (0, 1)
        facts = await store.tracking_facts(ws, BASE)
        assert (facts.events, facts.duplicates) == (1, 1)

    async def test_the_first_event_stays_received_after_a_quiet_week(
        self, store: ClickHouseTelemetryStore, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        first = telemetry(ws, cost=500, at=CURRENT.start)
        await store.append([first])
        facts = await store.tracking_facts(ws, CURRENT.start + timedelta(days=8))  # the last 7 days: nothing
        assert facts.events == 0
        assert (facts.received_any, facts.received_real, facts.first_event_at) == (True, True, first.occurred_at)
        done = {i.id for i in onboarding_checklist(facts) if i.done}
        assert {"first_event", "first_real_event"} <= done


class TestRebuild:
    async def test_rebuild_restores_rollups_from_raw_rows(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        batch = planted(ws, telemetry)
        await store.append(batch)
        drifted = [
            [
                ws,
                "real",
                CURRENT.start.replace(minute=0, second=0),
                "gpt-4o",
                "openai",
                "x",
                "u",
                "v",
                1,
                0,
                0,
                0,
                7,
                14,
            ]
        ]
        await clickhouse.insert("llm_requests_hourly", drifted, _ROLLUP_COLUMNS)

        events = await store.rebuild(
            UsageWindow(PREVIOUS.start, CURRENT.end + timedelta(seconds=1)), ws, now=datetime.now(UTC)
        )

        assert events == len(batch)
        raw_cost = sum(e.payload.cost_micro_usd for e in batch)
        assert await rollup_cost(clickhouse, "llm_requests_hourly", ws) == raw_cost
        assert await rollup_cost(clickhouse, "llm_requests_daily", ws) == raw_cost

    async def test_a_late_event_lands_in_its_own_hour(
        self, store: ClickHouseTelemetryStore, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        hour = UsageWindow(BASE + timedelta(hours=3), BASE + timedelta(hours=4))
        await store.append([telemetry(ws, cost=10, at=hour.start + timedelta(minutes=5), delay=timedelta(days=6))])
        [row] = [r for r in await store.breakdown(ws, {"h": hour}, "real") if r.dimension == "total"]
        assert row.totals.cost_micro_usd == 10


_ROLLUP_COLUMNS = (
    "workspace_id", "data_mode", "hour", "model", "provider", "endpoint_tag", "user_id", "prompt_version",
    "requests", "input_tokens", "output_tokens", "total_tokens", "cost_micro_usd", "retention_days",
)  # fmt: skip


class TestWeeklyReport:
    @pytest.mark.parametrize(
        ("now", "week_start"),
        [
            (datetime(2026, 11, 16, 0, 0, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC)),
            (datetime(2026, 11, 15, 23, 59, 59, 999_000, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC)),
        ],
    )
    async def test_it_covers_exactly_the_last_completed_seven_utc_days(
        self,
        store: ClickHouseTelemetryStore,
        telemetry: TelemetryFactory,
        unique: str,
        now: datetime,
        week_start: datetime,
    ) -> None:
        ws = f"ws_{unique}"
        week_end = week_start + timedelta(days=7)
        inside = [week_start, week_end - timedelta(milliseconds=1)]
        baseline = [week_start - timedelta(milliseconds=1), week_start - timedelta(days=7)]
        outside = [week_end, week_start - timedelta(days=7, milliseconds=1)]
        await store.append(
            [telemetry(ws, cost=1_000, at=at) for at in inside]
            + [telemetry(ws, cost=100, at=at) for at in baseline]
            + [telemetry(ws, cost=7, at=at) for at in outside]
        )

        report = await weekly_report(store, PolicyStatus(), ws, now=now, data_mode="real")

        assert (report.analysis.current_window.start, report.analysis.current_window.end) == (week_start, week_end)
        assert (report.analysis.current.cost_micro_usd, report.analysis.previous.cost_micro_usd) == (2_000, 200)
        assert [d for d, _ in report.current_days] == [week_start.date(), (week_end - DAY).date()]


class TestBoardPack:
    async def test_a_custom_range_sums_to_the_raw_rows(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        await store.append(planted(ws, telemetry))
        window = UsageWindow(PREVIOUS.start + timedelta(hours=9, minutes=1), CURRENT.end - timedelta(hours=20))
        now = datetime.now(UTC)

        pack = await board_pack(store, PolicyStatus(), Retention(14, 90), ws, window, now=now, data_mode="real")

        raw = await raw_totals(clickhouse, ws, window)
        assert (pack.totals.requests, pack.totals.cost_micro_usd, pack.totals.total_tokens) == tuple(raw.values())
        assert sum(t.cost_micro_usd for _, t in pack.days) == raw["cost"]
        assert sum(t.cost_micro_usd for t in pack.breakdown.keys("range", "endpointTag").values()) == raw["cost"]
        assert not pack.retention_applied
        old = UsageWindow(now - timedelta(days=20), now)
        assert (
            await board_pack(store, PolicyStatus(), Retention(14, 90), ws, old, now=now, data_mode="real")
        ).retention_applied
