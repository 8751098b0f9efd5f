from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings


class BillingSettings(ServiceSettings):
    """``OPSMETER_BILLING_*``."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_BILLING_", extra="ignore", frozen=True)

    port: int = 8083
