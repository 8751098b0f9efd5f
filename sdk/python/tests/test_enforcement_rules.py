"""The runtime actions' rules on a policy state (pure)."""

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from opsmeter import CallScope, PolicySnapshot, RuntimeActions
from opsmeter.enforcement import MODELS_KEPT, ModelNames, decide, normalize_model


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


WORKSPACE_OK = {"warning": False, "exceeded": False}


def scoped(dimension: str, value: str, *, exceeded: bool = True, warning: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "dimension": dimension,
        "value": value,
        "window": "daily",
        "warning": warning,
        "exceeded": exceeded,
        "periodEnd": "2999-01-01T00:00:00Z",
        **extra,
    }


def answer(*budgets: Any, workspace: dict[str, bool] | None = None, **actions: Any) -> PolicySnapshot:
    return PolicySnapshot.from_json(
        {
            "policyMode": "enforce",
            "budgetWarning": True,
            "budgetExceeded": True,
            "exceededWindows": [],
            "workspaceBudget": workspace or WORKSPACE_OK,
            "scopedBudgets": list(budgets),
            "runtimeActions": {"onBudgetExceeded": "block", **actions},
        }
    )


def action_for(
    snapshot: PolicySnapshot, *, endpoint_tag: str | None = None, model: str = "gpt-4o", user_id: str | None = None
) -> str | None:
    call = CallScope.of(endpoint_tag, model, user_id)
    decision = decide(snapshot, "openai", {**PARAMS, "model": model}, tokens_param="max_tokens", call=call)
    return None if decision is None else decision.action


class TestModelNormalization:
    @pytest.mark.parametrize(
        ("model", "normalized"),
        [
            ("gpt-4o", "gpt-4o"),
            ("  GPT-4o ", "gpt-4o"),
            ("openai/gpt-4o", "gpt-4o"),
            ("Acme/My-Model", "my-model"),
            ("bedrock/anthropic/claude-3-5-sonnet", "claude-3-5-sonnet"),
            ("gpt-4o-2024-08-06", "gpt-4o"),
            ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
            ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
            ("gpt-4o-mini", "gpt-4o-mini"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("o1-2024-12-17", "o1"),
            ("claude-3-5-sonnet-latest", "claude-3-5-sonnet-latest"),  # an alias only the price catalog knows
            ("gpt-4-0613", "gpt-4-0613"),  # not a date
        ],
    )
    def test_a_model_is_compared_as_the_gateway_normalizes_it(self, model: str, normalized: str) -> None:
        assert normalize_model(model) == normalized


class TestModelNames:
    def test_a_call_is_named_as_the_gateway_named_the_model_it_was_recorded_with(self) -> None:
        names = ModelNames()
        assert names.normalized("anthropic", "claude-x-latest") is None
        names.recorded("anthropic", "claude-x-latest", "claude-x-20991231")
        names.said("anthropic", "claude-x-20991231", "claude-x")
        assert names.normalized("anthropic", "claude-x-latest") == "claude-x"
        assert names.normalized("anthropic", "claude-x-20991231") == "claude-x"
        assert names.normalized("openai", "claude-x-latest") is None  # another provider's record says nothing of it
        names.said("anthropic", "claude-x-latest", "claude-x-legacy")  # a blocked call's record: the name asked
        assert names.normalized("anthropic", "claude-x-latest") == "claude-x"  # the answered one's name comes first
        names.recorded("anthropic", "claude-x-latest", "claude-x-latest")
        assert names.normalized("anthropic", "claude-x-latest") == "claude-x-legacy"

    def test_a_full_map_drops_its_oldest_name(self) -> None:
        names = ModelNames()
        for n in range(MODELS_KEPT + 1):
            names.said("openai", f"m{n}", f"name-{n}")
        assert names.normalized("openai", "m0") is None
        assert names.normalized("openai", "m1") == "name-1"
        assert names.normalized("openai", f"m{MODELS_KEPT}") == f"name-{MODELS_KEPT}"

    def test_a_learned_name_decides_whether_a_model_budget_concerns_the_call(self) -> None:
        snapshot = answer(scoped("model", "claude-3-5-sonnet"))
        call = CallScope.of(None, "claude-3-5-sonnet-latest", None)
        assert decide(snapshot, "anthropic", PARAMS, tokens_param="max_tokens", call=call) is None
        named = CallScope(model="claude-3-5-sonnet-latest", model_normalized="claude-3-5-sonnet")
        assert decide(snapshot, "anthropic", PARAMS, tokens_param="max_tokens", call=named) is not None


class TestScopedBudgets:
    def test_a_scoped_budget_concerns_only_the_calls_of_its_scope(self) -> None:
        user = answer(scoped("userId", "u_42"))
        assert action_for(user, user_id="u_42") == "block"
        assert action_for(user, user_id="u_7") is None
        assert action_for(user) is None
        endpoint = answer(scoped("endpointTag", "checkout.ai_summary"))
        assert action_for(endpoint, endpoint_tag="checkout.ai_summary") == "block"
        assert action_for(endpoint, endpoint_tag="search.rank") is None
        model = answer(scoped("model", "gpt-4o"))
        assert action_for(model, model="gpt-4o-2024-08-06") == "block"
        assert action_for(model, model="openai/gpt-4o") == "block"
        assert action_for(model, model="gpt-4o-mini") is None

    def test_a_call_without_attribution_is_the_gateways_unknown(self) -> None:
        assert action_for(answer(scoped("endpointTag", "unknown"))) == "block"
        assert action_for(answer(scoped("userId", "unknown")), user_id="") == "block"

    def test_the_workspace_budget_concerns_every_call(self) -> None:
        snapshot = answer(workspace={"warning": True, "exceeded": True})
        decision = decide(snapshot, "openai", PARAMS, tokens_param="max_tokens", call=CallScope.of("a", "b", "c"))
        assert decision is not None
        assert decision.detail == "budget exceeded (workspace)"

    def test_exceeded_wins_over_warning_and_the_action_follows_the_calls_own_state(self) -> None:
        snapshot = answer(
            scoped("userId", "u_42"),
            scoped("endpointTag", "checkout.ai_summary", exceeded=False),
            onBudgetWarning="clamp",
            clampMaxTokens=64,
        )
        assert action_for(snapshot, endpoint_tag="checkout.ai_summary", user_id="u_42") == "block"
        assert action_for(snapshot, endpoint_tag="checkout.ai_summary", user_id="u_7") == "clamp"
        assert action_for(snapshot, user_id="u_7") is None
        decision = decide(
            snapshot, "openai", PARAMS, tokens_param="max_tokens", call=CallScope.of("checkout.ai_summary", "m", "u_42")
        )
        assert decision is not None
        assert decision.detail == "budget exceeded (userId u_42, daily)"

    def test_an_old_server_answer_keeps_applying_to_every_call(self) -> None:
        old = PolicySnapshot.from_json(
            {"policyMode": "enforce", "budgetExceeded": True, "runtimeActions": {"onBudgetExceeded": "block"}}
        )
        assert old.workspace is None
        assert action_for(old, user_id="anyone") == "block"
        assert action_for(old, endpoint_tag="any.tag", model="gpt-4o-mini") == "block"

    def test_odd_scoped_entries_are_skipped_and_a_bad_period_end_is_unknown(self) -> None:
        snapshot = answer(
            scoped("userId", "u_42", periodEnd="soon"),
            {"dimension": "userId"},  # no value
            "userId=u_7",  # not an object
        )
        [budget] = snapshot.scoped_budgets
        assert (budget.value, budget.period_end) == ("u_42", None)

    def test_each_exceeded_budget_lifts_at_its_own_period_end(self) -> None:
        now = datetime.now(timezone.utc)
        snapshot = answer(
            scoped("userId", "u_42", periodEnd=(now - timedelta(seconds=1)).isoformat()),
            scoped("userId", "u_7", periodEnd=(now + timedelta(hours=1)).isoformat()),
        )
        lifted = snapshot.lifted(now - timedelta(seconds=5), now)
        assert action_for(lifted, user_id="u_42") is None  # its window ended after the answer
        assert action_for(lifted, user_id="u_7") == "block"
        assert action_for(snapshot.lifted(now, now), user_id="u_42") == "block"  # said after its end: a new window
