from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings


class AlertingSettings(ServiceSettings):
    """``OPSMETER_ALERTING_*``."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_ALERTING_", extra="ignore", frozen=True)

    port: int = 8082
