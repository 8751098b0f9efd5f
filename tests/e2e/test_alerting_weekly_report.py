"""Alerting delivers the weekly executive report's figures: it reads them from reporting with its service token."""

import asyncio

import httpx

from opsmeter_alerting.adapters.reports import WeeklyReports
from opsmeter_alerting.domain import weekly_report_lines
from opsmeter_cli.stack import service_token
from tests.conftest import RunningStack
from tests.e2e.test_ingest_governance import wait_for_plan


class TestWeeklyReportForAlerting:
    def test_reporting_serves_the_weekly_report_to_the_service_token_only(self, stack: RunningStack) -> None:
        ws = stack.create_workspace(plan="team")
        wait_for_plan(stack, ws, "team")
        url = f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/reports/weekly-executive"
        assert httpx.get(url, headers={"X-Service-Token": service_token(stack.config)}).status_code == 200
        assert httpx.get(url, headers={"X-Service-Token": "not-the-token"}).status_code == 401
        assert httpx.get(url).status_code == 401

    def test_the_summary_lines_carry_the_report_figures(self, stack: RunningStack) -> None:
        ws = stack.create_workspace(plan="team")
        wait_for_plan(stack, ws, "team")

        async def fetch() -> list[str]:
            async with httpx.AsyncClient() as http:
                reports = WeeklyReports(
                    http, base_url=stack.url("reporting"), service_token=service_token(stack.config)
                )
                return weekly_report_lines(await reports.weekly_executive(ws["workspaceId"]))

        lines = asyncio.run(fetch())
        assert lines[0].startswith("Week ")
        assert "$0 over 0 requests" in lines[0]
        assert weekly_report_lines(None) == [
            "The report's figures are unavailable right now; open the full report below."
        ]
