"""Opsmeter client SDK: telemetry for every LLM call, batched off the request path, never raising."""

from opsmeter.client import Opsmeter
from opsmeter.context import attribution
from opsmeter.enforcement import BudgetFlags, CallScope, Decision, PolicySnapshot, RuntimeActions, ScopedBudget
from opsmeter.errors import BudgetExceededError
from opsmeter.status import Stats, WorkspaceFlags
from opsmeter.usage import Tokens, anthropic_tokens, openai_tokens

__version__ = "0.1.0"
__all__ = [
    "BudgetExceededError",
    "BudgetFlags",
    "CallScope",
    "Decision",
    "Opsmeter",
    "PolicySnapshot",
    "RuntimeActions",
    "ScopedBudget",
    "Stats",
    "Tokens",
    "WorkspaceFlags",
    "__version__",
    "anthropic_tokens",
    "attribution",
    "openai_tokens",
]
