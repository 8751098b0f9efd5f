from opsmeter_billing.domain import limits_for


class TestPlanLimits:
    def test_plan_defaults_follow_the_spec(self) -> None:
        assert limits_for("free", None, None).rate_limit_per_minute == 120
        assert limits_for("starter", None, None).monthly_request_quota == 100_000
        assert limits_for("team", None, None).rate_limit_per_minute == 3000

    def test_workspace_policy_overrides_the_plan(self) -> None:
        limits = limits_for("enterprise", 50_000, 123)
        assert (limits.rate_limit_per_minute, limits.monthly_request_quota) == (50_000, 123)
