from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings


class PolicySettings(ServiceSettings):
    """``OPSMETER_POLICY_ENGINE_*``."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_POLICY_ENGINE_", extra="ignore", frozen=True)

    port: int = 8081
