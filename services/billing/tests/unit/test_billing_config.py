import pytest
from pydantic import ValidationError

from opsmeter_billing.config import BillingSettings, LemonSqueezySettings
from opsmeter_runtime.settings import RuntimeSettings

PROD = RuntimeSettings(env="prod", kafka_bootstrap="kafka:9092", operator_token_sha256="0" * 64)


class TestBillingSettings:
    def test_dev_starts_without_lemon_squeezy(self) -> None:
        settings = BillingSettings(runtime=RuntimeSettings(env="dev"), lemonsqueezy=LemonSqueezySettings())
        assert "OPSMETER_LEMONSQUEEZY_WEBHOOK_SECRET" in settings.lemonsqueezy.missing()

    def test_prod_refuses_to_start_without_lemon_squeezy(self) -> None:
        with pytest.raises(ValidationError, match="OPSMETER_LEMONSQUEEZY_API_KEY"):
            BillingSettings(runtime=PROD, lemonsqueezy=LemonSqueezySettings())

    def test_prod_starts_with_lemon_squeezy_and_keeps_secrets_out_of_its_repr(self) -> None:
        ls = LemonSqueezySettings(api_key="k_live_1", webhook_secret="whsec_2", variants="101=starter")
        settings = BillingSettings(runtime=PROD, lemonsqueezy=ls)
        assert "k_live_1" not in repr(settings)
        assert "whsec_2" not in repr(settings)

    def test_the_verify_interval_and_the_per_run_bound_come_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OPSMETER_BILLING_VERIFY_EVERY_S", "900")
        monkeypatch.setenv("OPSMETER_BILLING_RECONCILE_BATCH", "600")
        settings = BillingSettings(runtime=RuntimeSettings(env="dev"), lemonsqueezy=LemonSqueezySettings())
        assert (settings.verify_every_s, settings.reconcile_batch) == (900.0, 600)
        monkeypatch.setenv("OPSMETER_BILLING_VERIFY_EVERY_S", "0")
        with pytest.raises(ValidationError, match="verify_every_s"):
            BillingSettings(runtime=RuntimeSettings(env="dev"), lemonsqueezy=LemonSqueezySettings())

    def test_a_malformed_variant_map_refuses_to_start(self) -> None:
        with pytest.raises(ValidationError, match="VARIANT_ID=PLAN"):
            LemonSqueezySettings(variants="101=gold")


class TestUnconfiguredBilling:
    async def test_webhooks_and_plan_changes_say_what_is_missing(self) -> None:
        from typing import Any, cast

        from opsmeter_billing.commands import Billing
        from opsmeter_billing.domain import VariantMap
        from opsmeter_billing.errors import BillingNotConfigured
        from opsmeter_runtime.auth import Principal

        unused = cast(Any, None)
        billing = Billing(unused, unused, unused, unused, VariantMap({}), None, None)
        with pytest.raises(BillingNotConfigured, match="OPSMETER_LEMONSQUEEZY_WEBHOOK_SECRET"):
            await billing.receive_delivery(b"{}", "00")
        with pytest.raises(BillingNotConfigured, match="OPSMETER_LEMONSQUEEZY_API_KEY"):
            await billing.request_plan_change(Principal("ws_aaaaaaaaaaaa", "c", "admin_token", "owner"), "pro", "k")
        assert BillingNotConfigured.status_code == 503


class TestPacer:
    async def test_after_the_burst_calls_wait_for_the_rate(self) -> None:
        import time

        from opsmeter_billing.commands import Pacer

        pacer = Pacer(per_minute=3000, burst=3)  # 50 a second: 20 ms apart after three at once
        started = time.monotonic()
        for _ in range(3):
            await pacer.wait()
        assert time.monotonic() - started < 0.015
        for _ in range(3):
            await pacer.wait()
        assert time.monotonic() - started >= 0.055
