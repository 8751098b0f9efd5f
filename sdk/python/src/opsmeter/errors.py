"""The one error the SDK raises into the caller: a runtime ``block`` (or a ``queue`` that timed out)."""

from __future__ import annotations


class BudgetExceededError(Exception):
    """The workspace's budget is exceeded and its runtime action stopped this provider call before it was made."""

    def __init__(self, message: str, *, action: str, window: str | None = None) -> None:
        super().__init__(message)
        self.action = action
        self.window = window
