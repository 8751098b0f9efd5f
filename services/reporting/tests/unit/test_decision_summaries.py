"""Each decision on policy.decisions as the one line the board pack's budget history shows."""

from datetime import UTC, datetime

from opsmeter_contracts.events import PlanLimitReached, PlanLimitReachedPayload
from opsmeter_contracts.policy import (
    BudgetExceeded,
    BudgetThresholdPayload,
    BudgetWarningReached,
    EnforcementChanged,
    KillSwitchChanged,
    PolicySettingsPayload,
    PolicySwitchPayload,
    ScopedBudget,
    UnitCostBreached,
    UnitCostBreachedPayload,
)
from opsmeter_reporting.decisions import decision_summary, settings_summary

WS = "ws_abcdefgh12"
DAY = datetime(2026, 12, 7, tzinfo=UTC)


def budget(**changes: object) -> BudgetThresholdPayload:
    fields: dict[str, object] = {
        "scope": "workspace",
        "window": "daily",
        "period_start": DAY,
        "period_end": datetime(2026, 12, 8, tzinfo=UTC),
        "limit_micro_usd": 10_000_000,
        "threshold_ratio": 0.8,
        "threshold_micro_usd": 8_000_000,
        "spend_micro_usd": 8_100_000,
        "enforcement": "advisory",
        "policy_mode": "enforce",
        "blocks_ingest": False,
    }
    return BudgetThresholdPayload.model_validate({**fields, **changes})


def switch(**changes: object) -> PolicySwitchPayload:
    fields: dict[str, object] = {
        "settings_version": 3,
        "enforcement": "advisory",
        "kill_switch": True,
        "policy_mode": "observe",
        "previous_enforcement": "advisory",
        "previous_kill_switch": False,
        "changed_by_credential_id": "adm_1",
        "changed_by_role": "owner",
    }
    return PolicySwitchPayload.model_validate({**fields, **changes})


def test_budget_crossings_name_the_budget_and_the_money() -> None:
    warning = BudgetWarningReached.new(WS, budget())
    assert decision_summary(warning) == "Budget warning (80 %): workspace daily budget: 8.1 of 10 USD"
    exceeded = BudgetExceeded.new(
        WS, budget(scope="model", scope_value="gpt-4o", spend_micro_usd=10_500_000, blocks_ingest=True)
    )
    assert decision_summary(exceeded) == (
        "Budget exceeded: model gpt-4o daily budget: 10.5 of 10 USD; its model events stopped (hard-stop)"
    )


def test_rules_switches_and_the_plan_limit() -> None:
    breach = UnitCostBreached.new(
        WS,
        UnitCostBreachedPayload(
            rule_id="r1",
            metric="cost_per_request",
            max_micro_usd=10_000,
            observed_micro_usd=25_000,
            requests=40,
            model="gpt-4o",
            window_start=DAY,
            window_end=DAY,
            policy_mode="enforce",
        ),
    )
    assert decision_summary(breach) == "Unit cost 0.025 USD per request over the 0.01 USD rule for gpt-4o"
    assert decision_summary(KillSwitchChanged.new(WS, switch())) == "Kill switch turned on (observe mode) by the owner"
    enforcement = EnforcementChanged.new(
        WS, switch(enforcement="hard_stop", kill_switch=False, changed_by_role="admin")
    )
    assert decision_summary(enforcement) == "Enforcement advisory → hard_stop by the admin"
    limit = PlanLimitReached.new(
        WS, PlanLimitReachedPayload(plan="free", monthly_request_quota=10_000, period="2026-12", period_end=DAY)
    )
    assert decision_summary(limit) == "Plan request quota used up: 10,000 requests on free for 2026-12"


def test_a_settings_change_says_what_each_changed_section_became() -> None:
    budgets = PolicySettingsPayload(
        version=4,
        daily_limit_micro_usd=10_000_000,
        warning_threshold_ratio=0.5,
        scoped=(ScopedBudget(dimension="model", value="gpt-4o", monthly_limit_micro_usd=50_000_000),),
        changed_sections=("budgets",),
        changed_by_credential_id="adm_1",
        changed_by_role="admin",
    )
    assert settings_summary(budgets) == (
        "Budgets: daily 10 USD, monthly none, warning at 50 %; model gpt-4o: daily none, monthly 50 USD"
    )
    policy = budgets.model_copy(update={"changed_sections": ("policy",), "kill_switch": True})
    assert settings_summary(policy) == "Policy: enforcement advisory, kill switch on, cost basis computed"
