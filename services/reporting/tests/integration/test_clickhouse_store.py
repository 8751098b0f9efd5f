from datetime import UTC, datetime, timedelta
from importlib.resources import files

from services.reporting.tests.conftest import build_telemetry

from opsmeter_contracts import LlmRequestIngested
from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_reporting.domain import UsageWindow
from opsmeter_runtime.clickhouse import ClickHouse

NOW = datetime.now(UTC).replace(microsecond=0)


def event(workspace_id: str, *, cost: int, model: str = "gpt-4o-mini", data_mode: str = "real") -> LlmRequestIngested:
    return build_telemetry(workspace_id, cost=cost, model=model, data_mode=data_mode, at=NOW - timedelta(hours=1))


WINDOW = UsageWindow(NOW - timedelta(days=1), NOW + timedelta(minutes=1))


class TestClickHouseTelemetryStore:
    async def test_a_batch_delivered_twice_is_counted_once(self, store: ClickHouseTelemetryStore, unique: str) -> None:
        ws = f"ws_{unique}"
        batch = [event(ws, cost=100), event(ws, cost=250)]
        await store.append(batch)
        await store.append(batch)
        await store.append([batch[1], event(ws, cost=1)])
        [row] = await store.usage(ws, WINDOW, "day", "real")
        assert (row.requests, row.cost_micro_usd, row.total_tokens) == (3, 351, 330)

    async def test_usage_is_scoped_to_one_workspace_and_data_mode(
        self, store: ClickHouseTelemetryStore, unique: str
    ) -> None:
        mine, theirs = f"ws_{unique}a", f"ws_{unique}b"
        await store.append([event(mine, cost=5), event(theirs, cost=7), event(mine, cost=9, data_mode="test")])
        assert [r.cost_micro_usd for r in await store.usage(mine, WINDOW, "model", "real")] == [5]
        assert [r.cost_micro_usd for r in await store.usage(mine, WINDOW, "model", "test")] == [9]

    async def test_groups_by_model_ranked_by_cost(self, store: ClickHouseTelemetryStore, unique: str) -> None:
        ws = f"ws_{unique}"
        await store.append([event(ws, cost=5, model="a"), event(ws, cost=50, model="b"), event(ws, cost=6, model="a")])
        rows = await store.usage(ws, WINDOW, "model", "real")
        assert [(r.key, r.cost_micro_usd, r.requests) for r in rows] == [("b", 50, 1), ("a", 11, 2)]

    async def test_the_window_is_half_open(self, store: ClickHouseTelemetryStore, unique: str) -> None:
        ws = f"ws_{unique}"
        e = event(ws, cost=5)
        await store.append([e])
        assert await store.usage(ws, UsageWindow(e.occurred_at, NOW), "day", "real")
        assert not await store.usage(ws, UsageWindow(NOW - timedelta(days=2), e.occurred_at), "day", "real")

    async def test_migrations_apply_once(self, clickhouse: ClickHouse, store: ClickHouseTelemetryStore) -> None:
        assert await clickhouse.migrate(files("opsmeter_reporting") / "migrations") == []
