"""Ports of the reporting service."""

from collections.abc import Sequence
from typing import Protocol

from opsmeter_contracts import LlmRequestIngested
from opsmeter_reporting.domain import GroupBy, UsageRow, UsageWindow


class TelemetryStore(Protocol):
    async def append(self, events: Sequence[LlmRequestIngested]) -> None:
        """Store a batch durably; storing the same events again changes no total."""

    async def usage(
        self, workspace_id: str, window: UsageWindow, group_by: GroupBy, data_mode: str
    ) -> list[UsageRow]: ...
