from typing import Self

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    """``OPSMETER_REPORTING_*``: where reporting listens and how its sink batches."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_REPORTING_", extra="ignore", frozen=True)

    port: int = 8084
    sink_max_batch: int = 5000

    @model_validator(mode="after")
    def _server_in_prod(self) -> Self:
        if self.runtime.env == "prod" and self.runtime.clickhouse_url is None:
            raise ValueError("OPSMETER_CLICKHOUSE_URL must point at a ClickHouse server in prod")
        return self
