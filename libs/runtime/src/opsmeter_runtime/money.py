"""Money is integer micro-USD everywhere; it becomes a decimal string only at an API edge."""

from typing import Literal

MICRO = 1_000_000


def format_micro_usd(micro_usd: int) -> str:
    """Exact decimal USD string: 1234 → "0.001234", 2_500_000 → "2.5", 0 → "0"."""
    if micro_usd < 0:
        return "-" + format_micro_usd(-micro_usd)
    whole, fraction = divmod(micro_usd, MICRO)
    return f"{whole}.{fraction:06d}".rstrip("0") if fraction else str(whole)


CostBasis = Literal["computed", "reported", "reported_when_present"]
"""Which cost a workspace's budgets and reports use (ADR 57)."""


def parse_cost_basis(text: str) -> CostBasis:
    """A stored cost basis; anything unknown (or none stored) is ``computed``."""
    return (
        "reported" if text == "reported" else "reported_when_present" if text == "reported_when_present" else "computed"
    )


def cost_by_basis(computed: int, reported: int | None, basis: CostBasis) -> int:
    """The computed cost, the client's reported cost (0 when it sent none), or reported when present."""
    if basis == "computed":
        return computed
    if basis == "reported":
        return reported or 0
    return computed if reported is None else reported
