from datetime import UTC, datetime, timedelta, timezone

import pytest

from opsmeter_contracts.policy import PolicySettingsPayload, ScopedBudget, UnitCostRule
from opsmeter_policy.domain import (
    EventFacts,
    correction_increments,
    counts_toward_budget,
    day_window,
    evaluate_budgets,
    forecast_month,
    increments_for,
    model_scope,
    month_window,
    observe_unit_cost,
    spend_counter,
    switches_changed,
    threshold_amount,
    unit_cost_counters,
    unit_cost_window,
    with_model_scopes,
)
from opsmeter_pricing import normalize_model


class TestWindows:
    def test_day_is_the_utc_day_half_open(self) -> None:
        at = datetime(2026, 11, 25, 1, 30, tzinfo=timezone(timedelta(hours=3)))
        window = day_window(at)
        assert window.name == "day:2026-11-24"
        assert window.start == datetime(2026, 11, 24, tzinfo=UTC)
        assert window.end == datetime(2026, 11, 25, tzinfo=UTC)
        assert day_window(window.end).name == "day:2026-11-25"

    def test_month_rolls_over_the_year(self) -> None:
        window = month_window(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
        assert window.name == "month:2026-12"
        assert window.end == datetime(2027, 1, 1, tzinfo=UTC)


class TestDataMode:
    def test_only_real_events_count(self) -> None:
        assert counts_toward_budget("real")
        assert not counts_toward_budget("test")
        assert not counts_toward_budget("demo")


NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def settings(**values: object) -> PolicySettingsPayload:
    return PolicySettingsPayload.model_validate(
        {"version": 1, "changed_by_credential_id": "c", "changed_by_role": "owner", **values}
    )


class TestBudgets:
    def test_the_acceptance_budget_warns_at_the_second_and_exceeds_at_the_fourth_event(self) -> None:
        policy = settings(daily_limit_micro_usd=1_000_000, warning_threshold_ratio=0.5)
        flags = []
        for events in range(1, 5):
            status = evaluate_budgets(policy, {spend_counter(day_window(NOW)): 300_000 * events}, NOW).status
            flags.append((status.budget_warning, status.budget_exceeded))
        assert flags == [(False, False), (True, False), (True, False), (True, True)]

    def test_every_threshold_is_a_crossing_named_by_period_limit_and_ratio(self) -> None:
        policy = settings(monthly_limit_micro_usd=1_000, alert_thresholds=(0.5, 0.9))
        evaluation = evaluate_budgets(policy, {spend_counter(month_window(NOW)): 950}, NOW)
        assert [c.ratio for c in evaluation.crossings] == [0.5, 0.8, 0.9]
        assert evaluation.crossings[0].mark == "month:2026-11|limit=1000|ratio=0.5"
        assert not evaluation.status.budget_exceeded
        assert evaluation.status.exceeded_headroom_micro_usd == 50

    def test_a_scoped_budget_counts_only_its_value(self) -> None:
        policy = settings(scoped=(ScopedBudget(dimension="model", value="gpt-4o", daily_limit_micro_usd=10),))
        facts = EventFacts(NOW, 12, 100, "gpt-4o", "checkout", "u")
        counters = {i.counter for i in increments_for(facts, policy)}
        assert spend_counter(day_window(NOW), "model", "gpt-4o") in counters
        other = EventFacts(NOW, 12, 100, "gpt-4o-mini", "checkout", "u")
        assert spend_counter(day_window(NOW), "model", "gpt-4o") not in {
            i.counter for i in increments_for(other, policy)
        }
        scoped_total = {spend_counter(day_window(NOW), "model", "gpt-4o"): 12}
        assert evaluate_budgets(policy, scoped_total, NOW).status.budget_exceeded

    def test_an_exceeded_scoped_budget_stops_its_own_events_only(self) -> None:
        user = ScopedBudget(dimension="user_id", value="u_heavy", daily_limit_micro_usd=10)
        policy = settings(scoped=(user,), daily_limit_micro_usd=1_000, enforcement="hard_stop")
        status = evaluate_budgets(policy, {spend_counter(day_window(NOW), "user_id", "u_heavy"): 10}, NOW).status
        assert (status.budget_exceeded, status.workspace_exceeded, status.stopped_scopes) == (
            True,
            False,
            (("user_id", "u_heavy"),),
        )
        assert not status.blocks_ingest
        assert status.stops("chat", "gpt-4o", "u_heavy")
        assert not status.stops("chat", "gpt-4o", "u_light")
        assert status.stopping_scope("chat", "gpt-4o", "u_heavy") == ("user_id", "u_heavy")
        workspace = {spend_counter(day_window(NOW)): 1_000}
        assert evaluate_budgets(policy, workspace, NOW).status.stops("chat", "gpt-4o", "u_light")
        advisory = evaluate_budgets(
            policy.model_copy(update={"enforcement": "advisory"}),
            {spend_counter(day_window(NOW), "user_id", "u_heavy"): 10},
            NOW,
        ).status
        assert not advisory.stops("chat", "gpt-4o", "u_heavy")

    def test_thresholds_round_up_to_the_micro_dollar(self) -> None:
        assert threshold_amount(1_000_001, 0.5) == 500_001
        assert threshold_amount(1_000_000, 0.8) == 800_000


class TestModelScopes:
    @pytest.mark.parametrize(
        ("typed", "provider"),
        [
            ("GPT-4o", "openai"),
            (" gpt-4o ", "openai"),
            ("gpt-4o-2024-08-06", "openai"),
            ("azure/gpt-4o", "azure"),
            ("anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic"),
            ("Acme/My-Model", "acme"),
        ],
    )
    def test_a_typed_name_is_the_model_normalized_the_gateway_gives_its_calls(self, typed: str, provider: str) -> None:
        assert model_scope(typed) == normalize_model(provider, typed)

    def test_dated_and_cased_names_are_the_catalog_model(self) -> None:
        assert {model_scope(m) for m in ("GPT-4o", "gpt-4o-2024-08-06", "gpt-4o-20240806", "gpt-4o")} == {"gpt-4o"}
        assert model_scope("Acme/My-Model") == "my-model", "a model the catalog does not know: lowercased, no path"

    @pytest.mark.parametrize("catalog_id", ["openai/gpt-4o", "text-embedding-ada-002", "o3-2025-04-16", "GLM-5.2"])
    def test_a_catalog_model_id_is_kept_because_some_providers_events_carry_it(self, catalog_id: str) -> None:
        assert model_scope(catalog_id) == catalog_id

    def test_model_budgets_and_rules_count_the_events_of_the_model_they_name(self) -> None:
        rule = UnitCostRule(rule_id="r", metric="cost_per_request", max_micro_usd=1, model="gpt-4o-2024-08-06")
        policy = with_model_scopes(
            settings(
                scoped=(
                    ScopedBudget(dimension="model", value="GPT-4o", daily_limit_micro_usd=10),
                    ScopedBudget(dimension="endpoint_tag", value="Checkout", daily_limit_micro_usd=10),
                ),
                unit_cost_rules=(rule,),
            )
        )
        assert [b.value for b in policy.scoped] == ["gpt-4o", "Checkout"]
        assert policy.unit_cost_rules[0].model == "gpt-4o"
        counters = {i.counter for i in increments_for(EventFacts(NOW, 12, 100, "gpt-4o", "checkout", "u"), policy)}
        assert spend_counter(day_window(NOW), "model", "gpt-4o") in counters
        assert any(c.startswith("uc:r:") for c in counters)
        assert with_model_scopes(policy) is policy


class TestForecast:
    def test_the_month_is_extrapolated_from_the_recent_burn_rate(self) -> None:
        since = datetime(2026, 11, 24, tzinfo=UTC)
        forecast = forecast_month(
            spend_micro_usd=10_000_000,
            limit_micro_usd=20_000_000,
            recent_micro_usd=3_600_000,
            recent_since=since,
            now=NOW,
        )
        per_second = 3_600_000 / (36 * 3600)
        remaining = (datetime(2026, 12, 1, tzinfo=UTC) - NOW).total_seconds()
        assert forecast.projected_end_of_period_micro_usd == 10_000_000 + round(per_second * remaining)
        assert forecast.projected_exhaust_at is not None
        assert forecast.projected_exhaust_at < datetime(2026, 12, 1, tzinfo=UTC)

    def test_a_tiny_burn_rate_against_a_large_limit_exhausts_nothing_this_month(self) -> None:
        forecast = forecast_month(
            spend_micro_usd=1,
            limit_micro_usd=3_000_000,
            recent_micro_usd=1,
            recent_since=datetime(2026, 11, 1, tzinfo=UTC),
            now=datetime(2026, 11, 29, tzinfo=UTC),
        )
        assert forecast.projected_exhaust_at is None


class TestUnitCost:
    def test_average_cost_per_1k_tokens_over_the_window_breaches_above_the_max(self) -> None:
        rule = UnitCostRule(rule_id="r", metric="cost_per_1k_tokens", max_micro_usd=500, window_seconds=120)
        window = unit_cost_window(rule, NOW)
        assert len(unit_cost_counters(rule, window)) == 6
        minute = window.minutes[-1]
        totals = {f"uc:r:{minute}:cost": 1_200, f"uc:r:{minute}:requests": 2, f"uc:r:{minute}:tokens": 2_000}
        seen = observe_unit_cost(rule, window, totals)
        assert (seen.observed_micro_usd, seen.requests, seen.breached) == (600, 2, True)

    def test_an_average_a_fraction_above_the_max_breaches(self) -> None:
        rule = UnitCostRule(rule_id="r", metric="cost_per_request", max_micro_usd=1_000, window_seconds=60)
        window = unit_cost_window(rule, NOW)
        minute = window.minutes[-1]
        above = {f"uc:r:{minute}:cost": 3_002, f"uc:r:{minute}:requests": 3}
        assert observe_unit_cost(rule, window, above).breached  # 1,000.67 µ$ per request
        at = {f"uc:r:{minute}:cost": 3_000, f"uc:r:{minute}:requests": 3}
        assert not observe_unit_cost(rule, window, at).breached


class TestSwitches:
    def test_kill_switch_and_enforcement_changes_are_decisions(self) -> None:
        before = settings()
        assert switches_changed(before, settings(kill_switch=True, enforcement="hard_stop")) == [
            "kill_switch",
            "enforcement",
        ]
        assert switches_changed(before, settings(daily_limit_micro_usd=5)) == []


class TestCostCorrections:
    def test_a_correction_moves_the_windows_of_the_calls_own_time_and_no_unit_cost_bucket(self) -> None:
        rule = UnitCostRule(rule_id="r1", metric="cost_per_request", max_micro_usd=1)
        policy = settings(
            scoped=(ScopedBudget(dimension="model", value="acme", monthly_limit_micro_usd=10),),
            unit_cost_rules=(rule,),
        )
        called_at = NOW - timedelta(days=3)
        refund = EventFacts(called_at, -250_000, 0, "acme", "chat", "u")
        moved = {(i.counter, i.amount) for i in correction_increments(refund, policy)}
        assert moved == {
            (spend_counter(day_window(called_at)), -250_000),
            (spend_counter(month_window(called_at)), -250_000),
            (spend_counter(day_window(called_at), "model", "acme"), -250_000),
            (spend_counter(month_window(called_at), "model", "acme"), -250_000),
        }
