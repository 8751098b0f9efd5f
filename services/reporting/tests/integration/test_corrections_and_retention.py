"""Cost corrections and retention on real ClickHouse: a correction never outlives the call it corrects, a rebuild
never wipes summaries of a day raw no longer holds whole, and calls no price covered are counted."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

from services.reporting.tests.conftest import TelemetryFactory

from opsmeter_contracts import LlmRequestIngested
from opsmeter_pricing import PriceCatalog
from opsmeter_pricing.workspace import WorkspacePrice, WorkspacePrices
from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_reporting.domain import DAY, Breakdown, Retention, UsageWindow, floor_to
from opsmeter_reporting.explore import EventsQuery
from opsmeter_reporting.repricing import corrections, reprice
from opsmeter_runtime.clickhouse import ClickHouse

NOW = datetime.now(UTC)
CALL_AT = floor_to(NOW, DAY) - timedelta(days=3) + timedelta(hours=12)
CALL_DAY = UsageWindow(floor_to(CALL_AT, DAY), floor_to(CALL_AT, DAY) + DAY)
PRICES = WorkspacePrices(1, (WorkspacePrice("acme-70b", CALL_AT - DAY, 500_000, 1_000_000),))
"""$0.50 per 1M input tokens: a call of 1M input tokens stored at $3 is re-priced to $0.50 (−$2.50)."""


def acme_call(ws: str, telemetry: TelemetryFactory, **fields: object) -> LlmRequestIngested:
    return telemetry(
        ws, at=CALL_AT, model="acme-70b", provider="acme", input_tokens=1_000_000, output_tokens=0, **fields
    )


async def reprice_day(store: ClickHouseTelemetryStore, ws: str, data_mode: str = "real") -> None:
    """Re-price the call day's stored calls at PRICES and store the corrections, as an applied re-pricing does."""
    catalog = PriceCatalog.load_default()
    calls = await store.stored_calls(ws, CALL_DAY, data_mode, [])
    fixes = corrections(
        ws,
        "rp_test",
        reprice(calls, catalog, PRICES),
        data_mode="real" if data_mode == "real" else "test",
        catalog_version=catalog.version,
        requested_by="owner",
        now=NOW,
    )
    assert fixes
    await store.append_corrections(fixes)


async def expire(clickhouse: ClickHouse, event_id: UUID) -> None:
    """What raw's TTL does to a row past its window (at a merge), without waiting for the window to pass."""
    await clickhouse.command(
        "ALTER TABLE llm_requests_raw DELETE WHERE event_id = {id:UUID} SETTINGS mutations_sync = 2", {"id": event_id}
    )


def cost_of_day(rows: Breakdown) -> int:
    return rows.total("day").cost_micro_usd


class TestCorrectionsFollowTheirCall:
    async def test_usage_leaves_out_the_correction_of_an_expired_call_and_the_summary_keeps_it(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        call = acme_call(ws, telemetry, cost=3_000_000)
        await store.append([call], retention={ws: Retention(14, 90)})
        await reprice_day(store, ws)
        assert [(r.key, r.requests, r.cost_micro_usd) for r in await store.usage(ws, CALL_DAY, "model", "real")] == [
            ("acme-70b", 1, 500_000)
        ]

        await expire(clickhouse, call.event_id)

        assert await store.usage(ws, CALL_DAY, "model", "real") == []
        summary = Breakdown.of(await store.breakdown(ws, {"day": CALL_DAY}, "real"))
        assert (summary.total("day").requests, summary.total("day").cost_micro_usd) == (1, 500_000)

    async def test_deleting_test_data_deletes_the_corrections_of_its_calls(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        call = acme_call(ws, telemetry, cost=3_000_000, data_mode="test")
        kept = acme_call(ws, telemetry, cost=3_000_000)
        await store.append([call, kept])
        await reprice_day(store, ws, "test")
        await reprice_day(store, ws, "real")

        await store.delete_telemetry(ws, "test", None)

        assert await store.usage(ws, CALL_DAY, "day", "test") == []
        assert cost_of_day(Breakdown.of(await store.breakdown(ws, {"day": CALL_DAY}, "test"))) == 0
        await store.append([call])  # sent again after the deletion: a new call at its stored price
        [again] = await store.usage(ws, CALL_DAY, "day", "test")
        assert (again.requests, again.cost_micro_usd) == (1, 3_000_000)
        [real] = await store.usage(ws, CALL_DAY, "day", "real")
        assert (real.requests, real.cost_micro_usd) == (1, 500_000), "real data keeps its correction"

    async def test_a_correction_expires_with_the_summaries_of_its_call(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        short, long = f"ws_{unique}a", f"ws_{unique}b"
        await store.append([acme_call(short, telemetry, cost=3_000_000)], retention={short: Retention(3650, 1)})
        await store.append([acme_call(long, telemetry, cost=3_000_000)], retention={long: Retention(3650, 90)})
        await reprice_day(store, short)
        await reprice_day(store, long)

        await clickhouse.command("OPTIMIZE TABLE llm_cost_corrections FINAL")

        rows = await clickhouse.query(
            "SELECT workspace_id, count() AS n FROM llm_cost_corrections WHERE workspace_id IN {ws:Array(String)} "
            "GROUP BY workspace_id",
            {"ws": [short, long]},
        )
        assert {r["workspace_id"]: r["n"] for r in rows} == {long: 1}

    async def test_listed_events_carry_their_corrected_cost(
        self, store: ClickHouseTelemetryStore, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        await store.append([acme_call(ws, telemetry, cost=3_000_000), telemetry(ws, at=CALL_AT, cost=7)])
        await reprice_day(store, ws)

        events = await store.events(ws, EventsQuery(CALL_DAY, "real", 50, dimension="model", key="acme-70b"))

        assert [e["cost_micro_usd"] for e in events] == [500_000]


class TestUnpricedCalls:
    async def test_usage_counts_calls_no_price_covered_until_they_are_repriced(
        self, store: ClickHouseTelemetryStore, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        await store.append(
            [
                acme_call(ws, telemetry, cost=0, priced=False),
                telemetry(ws, at=CALL_AT, cost=0, model="mystery-1", priced=False),
                telemetry(ws, at=CALL_AT, cost=1_000),
            ]
        )
        assert sum(r.unpriced_requests for r in await store.usage(ws, CALL_DAY, "day", "real")) == 2

        await reprice_day(store, ws)  # a workspace price now covers acme-70b

        assert sum(r.unpriced_requests for r in await store.usage(ws, CALL_DAY, "day", "real")) == 1


class TestRebuildWithinRetention:
    async def test_a_day_whose_first_rows_expired_keeps_its_summaries(
        self, store: ClickHouseTelemetryStore, clickhouse: ClickHouse, telemetry: TelemetryFactory, unique: str
    ) -> None:
        ws = f"ws_{unique}"
        yesterday = UsageWindow(floor_to(NOW, DAY) - DAY, floor_to(NOW, DAY))
        early = telemetry(ws, cost=100_000_000, at=yesterday.start + timedelta(seconds=1))  # expired at 00:00:01
        late = telemetry(ws, cost=10_000_000, at=yesterday.end - timedelta(seconds=1))  # kept until 23:59:59
        await store.append([early, late], retention={ws: Retention(1, 90)})
        await expire(clickhouse, early.event_id)

        rebuilt = await store.rebuild(yesterday, ws, now=NOW)

        pack = Breakdown.of(await store.breakdown(ws, {"day": yesterday}, "real"))
        assert (pack.total("day").requests, pack.total("day").cost_micro_usd) == (2, 110_000_000)
        assert rebuilt == 0
