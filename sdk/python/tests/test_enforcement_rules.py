"""The runtime actions' rules on a policy state (pure)."""

from typing import Any

import pytest

from opsmeter import PolicySnapshot, RuntimeActions
from opsmeter.enforcement import decide


def state(action: str, *, mode: str = "enforce", exceeded: bool = True, **actions: Any) -> PolicySnapshot:
    return PolicySnapshot(
        policy_mode=mode,
        budget_warning=True,
        budget_exceeded=exceeded,
        actions=RuntimeActions(on_budget_exceeded=action, **actions),
    )


PARAMS = {"model": "gpt-4o", "max_tokens": 4096, "messages": []}


class TestDecide:
    def test_nothing_happens_below_the_budget_or_without_an_action(self) -> None:
        assert decide(state("block", exceeded=False), "openai", PARAMS, tokens_param="max_tokens") is None
        assert decide(state("none"), "openai", PARAMS, tokens_param="max_tokens") is None

    def test_clamp_lowers_only_a_higher_limit(self) -> None:
        clamped = decide(state("clamp", clamp_max_tokens=64), "openai", PARAMS, tokens_param="max_tokens")
        assert clamped is not None
        assert clamped.params["max_tokens"] == 64
        assert clamped.detail == "max_tokens 4096->64"
        low = {**PARAMS, "max_tokens": 32}
        assert decide(state("clamp", clamp_max_tokens=64), "openai", low, tokens_param="max_tokens") is None

    def test_fallback_swaps_only_a_mapped_model(self) -> None:
        rules = state("fallback", fallback_models={"gpt-4o": "gpt-4o-mini"})
        swapped = decide(rules, "openai", PARAMS, tokens_param="max_tokens")
        assert swapped is not None
        assert swapped.params["model"] == "gpt-4o-mini"
        assert decide(rules, "openai", {**PARAMS, "model": "o3"}, tokens_param="max_tokens") is None

    @pytest.mark.parametrize("action", ["block", "clamp", "fallback", "queue"])
    def test_observe_mode_reports_the_action_and_leaves_the_params(self, action: str) -> None:
        rules = state(action, mode="observe", clamp_max_tokens=64, fallback_models={"gpt-4o": "gpt-4o-mini"})
        observed = decide(rules, "openai", PARAMS, tokens_param="max_tokens")
        assert observed is not None
        assert (observed.action, observed.mode) == (action, "observed")
        assert observed.params == PARAMS
        assert observed.metadata()["opsmeterAction"] == action
