"""Re-pricing's arithmetic: the delta a call's budgets and reports move by follows the cost basis it was stored
with; a correction is derived, so publishing it twice is the same event."""

import uuid
from datetime import UTC, datetime

import pytest

from opsmeter_pricing import PriceCatalog
from opsmeter_pricing.workspace import WorkspacePrice, WorkspacePrices
from opsmeter_reporting.domain import StoredCall
from opsmeter_reporting.repricing import corrections, diff_by_model, reprice
from opsmeter_runtime.money import CostBasis

AT = datetime(2026, 12, 7, 9, tzinfo=UTC)
TOKENS = {
    "input_tokens": 2_000_000,
    "output_tokens": 1_000_000,
    "cached_input_tokens": 0,
    "cache_write_input_tokens": 0,
    "reasoning_tokens": 0,
}
PROVIDERS = {"claude-sonnet-4-5": "anthropic"}
PRICES = WorkspacePrices(1, (WorkspacePrice("acme-llama-70b", datetime(2026, 12, 6, tzinfo=UTC), 500_000, 1_000_000),))


def call(
    cost: int, *, basis: CostBasis = "computed", reported: bool = False, model: str = "acme-llama-70b", **tokens: int
) -> StoredCall:
    """A stored call of ``model``: 2M input and 1M output tokens unless ``tokens`` says otherwise."""
    return StoredCall(
        event_id=uuid.uuid4(),
        occurred_at=AT,
        provider=PROVIDERS.get(model, "acme"),
        model=model,
        model_normalized=model,
        endpoint_tag="chat",
        user_id="u1",
        prompt_version=None,
        computed_cost_micro_usd=cost,
        had_reported_cost=reported,
        cost_basis=basis,
        **{**TOKENS, **tokens},
    )


class TestReprice:
    @pytest.mark.parametrize(
        ("basis", "reported", "counted"),
        [
            ("computed", True, 2_000_000),
            ("reported_when_present", False, 2_000_000),
            ("reported_when_present", True, 0),
            ("reported", False, 0),
        ],
    )
    def test_the_counted_delta_follows_the_basis_the_call_was_stored_with(
        self, basis: CostBasis, reported: bool, counted: int
    ) -> None:
        [repriced] = reprice([call(0, basis=basis, reported=reported)], PriceCatalog.load_default(), PRICES)
        assert (repriced.computed_delta_micro_usd, repriced.delta_micro_usd) == (2_000_000, counted)

    def test_the_diff_sums_per_model_and_counts_only_calls_that_change(self) -> None:
        calls = [call(0), call(2_000_000), call(0, model="gpt-4o-mini")]
        diffs = diff_by_model(reprice(calls, PriceCatalog.load_default(), PRICES))
        assert [(d.model, d.requests, d.repriced, d.old_cost_micro_usd, d.new_cost_micro_usd) for d in diffs] == [
            ("acme-llama-70b", 2, 1, 2_000_000, 4_000_000),  # the largest change first
            ("gpt-4o-mini", 1, 1, 0, 900_000),  # the catalog: 2M x $0.15 + 1M x $0.60
        ]

    def test_corrections_are_derived_from_the_repricing_and_the_call(self) -> None:
        repriced = reprice([call(0), call(2_000_000)], PriceCatalog.load_default(), PRICES)
        first = corrections(
            "ws_abcdefgh12", "rp_1", repriced, data_mode="real", catalog_version="v", requested_by="t", now=AT
        )
        again = corrections(
            "ws_abcdefgh12", "rp_1", repriced, data_mode="real", catalog_version="v", requested_by="t", now=AT
        )
        assert [e.event_id for e in first] == [e.event_id for e in again]
        assert len(first) == 1  # the call already at its price has no correction
        assert (first[0].occurred_at, first[0].payload.delta_micro_usd) == (AT, 2_000_000)


class TestOneHourCacheWrites:
    def _sonnet(self, cost: int, one_hour: int) -> StoredCall:
        return call(
            cost,
            model="claude-sonnet-4-5",
            input_tokens=101_000,
            output_tokens=500,
            cache_write_input_tokens=100_000,
            cache_write_1h_input_tokens=one_hour,
        )

    def test_a_call_with_one_hour_writes_reprices_to_what_ingest_charged(self) -> None:
        # $3/M input, $6/M 1-hour writes, $15/M output: 3,000 + 600,000 + 7,500 µ$.
        [same] = reprice([self._sonnet(610_500, 100_000)], PriceCatalog.load_default(), None)
        assert (same.new_cost_micro_usd, same.computed_delta_micro_usd) == (610_500, 0)
        [five_minute] = reprice([self._sonnet(385_500, 0)], PriceCatalog.load_default(), None)
        assert five_minute.computed_delta_micro_usd == 0
