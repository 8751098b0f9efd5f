"""The reads added for the console: the stacked cost series and the raw events behind a driver, and what the
Overview shows of them."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import RunningStack
from tests.e2e.console_browser import Browser, Workspace, eventually, open_browser, screenshot, sign_in


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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from open_browser()


class TestOverview:
    def test_day_bars_are_named_by_their_utc_day_and_unpriced_calls_are_named(
        self, browser: Browser, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter")
        settings = httpx.get(f"{stack.url('alerting')}/v1/workspaces/{ws.id}/alerts/settings", headers=ws.auth)
        saved = httpx.put(
            f"{stack.url('alerting')}/v1/workspaces/{ws.id}/alerts/settings",
            json={**settings.json(), "schedule": {**settings.json()["schedule"], "timezone": "America/Los_Angeles"}},
            headers=ws.auth,
        )
        assert saved.status_code == 200, saved.text
        noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)
        for model in ("gpt-4o-mini", "acme-unlisted-1"):
            assert ws.ingest(model=model, timestamp=noon.isoformat()).status_code == 202
        eventually(lambda: ws.usage(**{"from": noon.isoformat()})["totals"]["requests"] == 2, "both calls stored")

        page = browser.page()
        with page.expect_response(lambda r: r.url.endswith("/alerts/settings")):  # the workspace's time zone
            sign_in(page, stack.url("console"), ws.token)
        notice = page.get_by_test_id("unpriced-calls")
        notice.wait_for()
        assert "1 call in this period used a model with no price" in notice.inner_text()
        assert f"/v1/workspaces/{ws.id}/prices/unpriced" in notice.inner_text()
        chart = page.get_by_role("img", name="Cost over time")
        # The bar of the UTC day, not of the Los Angeles day its 00:00 UTC start falls in (the day before).
        chart.locator("text", has_text=re.compile(rf"^{noon:%b} {noon.day}$")).wait_for()
        day_before = noon - timedelta(days=1)
        assert chart.locator("text", has_text=re.compile(rf"^{day_before:%b} {day_before.day}$")).count() == 0
        screenshot(page, "overview-unpriced-calls")
