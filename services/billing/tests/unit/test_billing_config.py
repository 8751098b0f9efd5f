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
