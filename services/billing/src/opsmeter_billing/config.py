from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from opsmeter_billing.domain import VariantMap
from opsmeter_runtime.settings import ServiceSettings


class LemonSqueezySettings(BaseSettings):
    """``OPSMETER_LEMONSQUEEZY_*``: optional in dev and test (billing then answers 503 for what needs them)."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_LEMONSQUEEZY_", extra="ignore", frozen=True)

    api_url: str = "https://api.lemonsqueezy.com"
    api_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    previous_webhook_secret: SecretStr | None = Field(
        default=None,
        description="While the signing secret is rotated: the old one, still accepted for deliveries and for the "
        "claims of checkouts opened under it (new checkouts use the current one). Remove it once they are through.",
    )
    store_id: str | None = Field(
        default=None, pattern=r"^[0-9]{1,20}$", description="The store checkouts are created in (in-app subscribe)."
    )
    variants: str = Field(
        default="", description='Variant ids to plans: "101=starter,102=pro,103=team,104=enterprise".'
    )

    @field_validator("variants")
    @classmethod
    def _parses(cls, value: str) -> str:
        VariantMap.parse(value)
        return value

    @property
    def variant_map(self) -> VariantMap:
        return VariantMap.parse(self.variants)

    def missing(self) -> list[str]:
        names = {
            "OPSMETER_LEMONSQUEEZY_API_KEY": self.api_key,
            "OPSMETER_LEMONSQUEEZY_WEBHOOK_SECRET": self.webhook_secret,
        }
        missing = [name for name, secret in names.items() if secret is None or not secret.get_secret_value()]
        return [*missing, *([] if self.variants else ["OPSMETER_LEMONSQUEEZY_VARIANTS"])]


class BillingSettings(ServiceSettings):
    """``OPSMETER_BILLING_*``."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_BILLING_", extra="ignore", frozen=True)

    port: int = 8083
    reconcile_interval_s: float = Field(default=300.0, gt=0, description="How often reconciliation polls.")
    reconcile_stale_renewal_s: float = Field(
        default=3600.0, gt=0, description="Poll a subscription whose renewal date passed this long ago without news."
    )
    verify_every_s: float = Field(
        default=3600.0,
        gt=0,
        description="Read every linked subscription from Lemon Squeezy about this often, so a dropped webhook heals.",
    )
    reconcile_batch: int = Field(default=300, ge=1, description="Lemon Squeezy reads per reconciliation run at most.")
    reconcile_calls_per_minute: float = Field(
        default=120.0, gt=0, description="Pace of reconciliation's reads after the burst (Lemon Squeezy allows 300)."
    )
    reconcile_burst: int = Field(default=60, ge=1, description="Reads reconciliation may make at once.")
    pending_timeout_s: float = Field(default=86_400.0, gt=0, description="A change never confirmed stops pending.")
    lemonsqueezy_attempts: int = Field(default=4, ge=1, description="Tries per Lemon Squeezy call on 429/5xx.")
    lemonsqueezy_backoff_s: float = Field(default=0.2, ge=0)
    lemonsqueezy: LemonSqueezySettings = Field(default_factory=LemonSqueezySettings)

    @model_validator(mode="after")
    def _lemonsqueezy_required_in_prod(self) -> Self:
        missing = self.lemonsqueezy.missing()
        if self.runtime.env == "prod" and missing:
            raise ValueError(f"billing needs {', '.join(missing)} in prod")
        return self
