"""The reads added for the console: the stacked cost series and the raw events behind a driver."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import RunningStack
from tests.e2e.console_browser import Workspace, eventually


@pytest.fixture(scope="module")
def loaded(stack: RunningStack) -> Workspace:
    ws = Workspace.create(stack, "starter")
    now = datetime.now(UTC)
    for i in range(7):
        answer = ws.ingest(
            model="gpt-4o" if i % 2 else "gpt-4o-mini",
            endpointTag="search.rerank" if i < 3 else "checkout.ai_summary",
            status="error" if i == 0 else "success",
            timestamp=(now - timedelta(minutes=10 + i)).isoformat(),
        )
        assert answer.status_code == 202, answer.text
    eventually(lambda: ws.usage()["totals"]["requests"] == 7, "reporting stored the 7 events", timeout=30)
    return ws


def get(ws: Workspace, path: str, **query: Any) -> dict[str, Any]:
    answer = httpx.get(
        f"{ws.stack.url('reporting')}/v1/workspaces/{ws.id}/{path}", params=query, headers=ws.auth, timeout=30
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"from": (now - timedelta(hours=2)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}


class TestUsageSeries:
    def test_the_series_adds_up_to_the_usage_report_and_counts_errors(self, loaded: Workspace) -> None:
        series = get(loaded, "usage/series", stackBy="model", **window())
        usage = loaded.usage(groupBy="model", **window())
        assert series["bucket"] == "hour"
        assert series["totals"]["costMicroUsd"] == usage["totals"]["costMicroUsd"]
        assert (series["totals"]["requests"], series["totals"]["errors"]) == (7, 1)
        assert {p["key"] for p in series["points"]} == {"gpt-4o", "gpt-4o-mini"}

    def test_a_long_range_is_bucketed_by_day_and_stacked_by_provider(self, loaded: Workspace) -> None:
        now = datetime.now(UTC)
        series = get(loaded, "usage/series", stackBy="provider", **{"from": (now - timedelta(days=7)).isoformat()})
        assert series["bucket"] == "day"
        assert {p["key"] for p in series["points"]} == {"openai"}


class TestRawEvents:
    def test_pages_run_newest_first_without_gaps_or_repeats(self, loaded: Workspace) -> None:
        seen: list[dict[str, Any]] = []
        before = None
        while True:
            page = get(loaded, "events", limit=3, **window(), **({"before": before} if before else {}))
            seen += page["events"]
            before = page["nextBefore"]
            if before is None:
                break
        assert len(seen) == 7
        assert len({e["eventId"] for e in seen}) == 7
        times = [e["occurredAt"] for e in seen]
        assert times == sorted(times, reverse=True)

    def test_a_driver_filter_returns_only_its_events(self, loaded: Workspace) -> None:
        page = get(loaded, "events", dimension="endpointTag", key="search.rerank", **window())
        assert len(page["events"]) == 3
        assert {e["endpointTag"] for e in page["events"]} == {"search.rerank"}

    def test_a_forged_cursor_is_refused(self, loaded: Workspace) -> None:
        answer = httpx.get(
            f"{loaded.stack.url('reporting')}/v1/workspaces/{loaded.id}/events",
            params={**window(), "before": "not-a-cursor"},
            headers=loaded.auth,
        )
        assert answer.status_code == 422
