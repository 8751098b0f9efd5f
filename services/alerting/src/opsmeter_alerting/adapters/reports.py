"""Reporting's weekly executive report, read over HTTP with this service's token (alerting owns no ClickHouse)."""

from typing import Any

import httpx

from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)


class WeeklyReports:
    def __init__(self, http: httpx.AsyncClient, *, base_url: str, service_token: str | None) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._token = service_token

    async def weekly_executive(self, workspace_id: str) -> dict[str, Any] | None:
        """The report's JSON, or None when reporting cannot give it now (the summary then says so)."""
        if not self._token:
            return None
        url = f"{self._base_url}/v1/workspaces/{workspace_id}/reports/weekly-executive"
        try:
            answer = await self._http.get(url, headers={"X-Service-Token": self._token}, timeout=10)
        except httpx.HTTPError as exc:
            log.warning("weekly_report_unavailable", error=str(exc))
            return None
        if answer.status_code != 200:
            log.warning("weekly_report_unavailable", status=answer.status_code)
            return None
        report: dict[str, Any] = answer.json()
        return report
