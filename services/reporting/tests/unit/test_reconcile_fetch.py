"""Fetching the provider's cost report with an admin key through a configurable base URL: every page, the key in
the provider's own header, one response shaped as documented."""

import json
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from opsmeter_reporting.reconcile import (
    ReportFetchFailed,
    anthropic_cost_report,
    fetch_report,
    loads,
    openai_costs,
)
from opsmeter_runtime.http_double import LocalHttpDouble

FIXTURES = Path(__file__).parents[1] / "fixtures" / "reconciliation"
START, END = datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC)


class CostsApi(LocalHttpDouble):
    """Serves a fixture report one bucket per page; remembers each request's path, query and key header."""

    seen: ClassVar[list[tuple[str, dict[str, list[str]], str]]] = []

    def __init__(self, fixture: str, key_header: str) -> None:
        super().__init__()
        self.report: dict[str, Any] = json.loads((FIXTURES / fixture).read_text())
        self.key_header = key_header

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                api.seen.append((url.path, query, self.headers.get(api.key_header, "")))
                if "bad" in self.headers.get(api.key_header, ""):
                    self.send_response(401)
                    self.end_headers()
                    return
                index = int(query.get("page", ["0"])[0])
                data = api.report["data"]
                more = index + 1 < len(data)
                body = {
                    **api.report,
                    "data": [data[index]],
                    "has_more": more,
                    "next_page": str(index + 1) if more else None,
                }
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        return Handler


class TestFetchReport:
    async def test_openai_costs_are_fetched_page_by_page_with_the_bearer_key(self) -> None:
        CostsApi.seen.clear()
        with CostsApi("openai_costs.json", "Authorization") as api:
            report = await fetch_report("openai", "sk-admin-1", api.url, START, END)
        assert report == loads((FIXTURES / "openai_costs.json").read_text())  # every page, numbers exact
        assert [(path, q.get("page"), key) for path, q, key in CostsApi.seen] == [
            ("/v1/organization/costs", None, "Bearer sk-admin-1"),
            ("/v1/organization/costs", ["1"], "Bearer sk-admin-1"),
            ("/v1/organization/costs", ["2"], "Bearer sk-admin-1"),
        ]
        assert CostsApi.seen[0][1]["start_time"] == [str(int(START.timestamp()))]
        assert CostsApi.seen[0][1]["group_by"] == ["line_item"]
        assert len(openai_costs(report, str)) == 6

    async def test_anthropic_cost_report_is_fetched_with_the_x_api_key(self) -> None:
        CostsApi.seen.clear()
        with CostsApi("anthropic_cost_report.json", "x-api-key") as api:
            report = await fetch_report("anthropic", "sk-ant-admin-1", api.url, START, END)
        assert len(anthropic_cost_report(report, str)) == 7
        assert {key for _, _, key in CostsApi.seen} == {"sk-ant-admin-1"}
        assert CostsApi.seen[0][1]["group_by[]"] == ["description"]

    async def test_a_refused_key_is_an_error_naming_the_provider(self) -> None:
        with CostsApi("openai_costs.json", "Authorization") as api, pytest.raises(ReportFetchFailed, match="openai"):
            await fetch_report("openai", "bad-key", api.url, START, END)
