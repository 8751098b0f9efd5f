"""The one error the SDK raises into the caller: a runtime ``block`` (or a ``queue`` that timed out)."""

from __future__ import annotations


class BudgetExceededError(Exception):
    """A budget that concerns this provider call is exceeded (or at warning) and the workspace's runtime action
    stopped the call before it was made.

    ``budget`` says which: ``"workspace"`` (the workspace's own budgets), or a scoped budget's dimension
    (``"endpointTag"``, ``"model"``, ``"userId"``) with its ``budget_value`` and ``window``; None when the server is
    older than scoped budgets and does not say.
    """

    def __init__(
        self,
        message: str,
        *,
        action: str,
        window: str | None = None,
        budget: str | None = None,
        budget_value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.action = action
        self.window = window
        self.budget = budget
        self.budget_value = budget_value
