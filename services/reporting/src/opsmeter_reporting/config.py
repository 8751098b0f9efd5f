from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    """``OPSMETER_REPORTING_*``: where reporting listens and how its sink batches."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_REPORTING_", extra="ignore", frozen=True)

    port: int = 8084
    sink_max_batch: int = 5000
