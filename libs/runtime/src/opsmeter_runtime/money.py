"""Money is integer micro-USD everywhere; it becomes a decimal string only at an API edge."""

MICRO = 1_000_000


def format_micro_usd(micro_usd: int) -> str:
    """Exact decimal USD string: 1234 → "0.001234", 2_500_000 → "2.5", 0 → "0"."""
    if micro_usd < 0:
        return "-" + format_micro_usd(-micro_usd)
    whole, fraction = divmod(micro_usd, MICRO)
    return f"{whole}.{fraction:06d}".rstrip("0") if fraction else str(whole)
