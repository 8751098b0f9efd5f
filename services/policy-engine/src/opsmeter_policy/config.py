from pydantic import Field
from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings


class PolicySettings(ServiceSettings):
    """``OPSMETER_POLICY_ENGINE_*``."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_POLICY_ENGINE_", extra="ignore", frozen=True)

    port: int = 8081
    consumer_suffix: str = Field(default="", description="Appended to the consumer group names (isolated test runs).")
    spend_max_batch: int = Field(default=500, ge=1)
    tick_s: float = Field(default=1.0, gt=0, description="How often the engine checks for a new UTC day.")
