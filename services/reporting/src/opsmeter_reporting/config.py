from fractions import Fraction
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from opsmeter_reporting.analyst_sql import AnalystLimits
from opsmeter_reporting.domain import Retention, SpikeRule
from opsmeter_runtime.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    """``OPSMETER_REPORTING_*``: where reporting listens, how its sink batches, when a spike is a spike."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_REPORTING_", extra="ignore", frozen=True)

    port: int = 8084
    sink_max_batch: int = Field(default=5000, ge=1, le=20_000)
    sink_linger_ms: int = Field(default=250, ge=0, le=10_000)
    spike_window: Literal["1h", "24h", "7d", "30d"] = "1h"
    spike_interval_s: float = Field(default=60.0, gt=0, description="How often the spike detection job runs.")
    spike_min_increase: str = Field(default="0.5", description="Cost up by at least this ratio (0.5 = +50%).")
    spike_min_delta_micro_usd: int = Field(default=1_000_000, ge=0)
    enterprise_raw_retention_days: int = Field(default=365, ge=1, le=3650)
    enterprise_summary_retention_days: int = Field(default=1095, ge=1, le=3650)
    analyst_clickhouse_url: str | None = Field(
        default=None,
        description="The ClickHouse user workspace SQL runs as (deploy/clickhouse/analyst-user.sql: SELECT on the "
        "documented tables, a row policy per workspace); required in prod. Unset: the service's own connection.",
    )
    analyst_workers: int = Field(default=2, ge=1, le=16, description="Threads (and connections) for analyst SQL.")
    analyst_max_execution_s: float = Field(default=10.0, gt=0, le=300, description="A workspace's SQL query.")
    analyst_max_memory_bytes: int = Field(default=512 * 1024**2, ge=16 * 1024**2)
    analyst_max_threads: int = Field(default=1, ge=1, le=64)
    openai_admin_base_url: str = Field(
        default="https://api.openai.com", description="Where reconciliation fetches OpenAI's organization costs."
    )
    anthropic_admin_base_url: str = Field(
        default="https://api.anthropic.com", description="Where reconciliation fetches Anthropic's cost report."
    )
    operator_sql_max_execution_s: float = Field(default=30.0, gt=0, le=3600)
    operator_sql_max_memory_bytes: int = Field(default=2 * 1024**3, ge=16 * 1024**2)
    clickhouse_topology: Literal["single", "cluster"] = Field(
        default="single",
        description="`cluster`: a sharded, replicated ClickHouse server cluster gets migrations_cluster/ "
        "(Replicated tables under Distributed ones, ON CLUSTER '{cluster}'; ADR 0059). The embedded chDB is single.",
    )
    fault_insert_failure_file: Path | None = Field(
        default=None,
        description="Fault injection for `make chaos` only: while this file exists, every insert of the sink fails "
        "as if ClickHouse were unreachable. Refused in prod.",
    )

    @model_validator(mode="after")
    def _server_in_prod(self) -> Self:
        if self.runtime.env == "prod" and self.fault_insert_failure_file is not None:
            raise ValueError("OPSMETER_REPORTING_FAULT_INSERT_FAILURE_FILE is fault injection; refused in prod")
        if self.runtime.env == "prod" and self.runtime.clickhouse_url is None:
            raise ValueError("OPSMETER_CLICKHOUSE_URL must point at a ClickHouse server in prod")
        if self.runtime.env == "prod" and self.analyst_clickhouse_url is None:
            raise ValueError("OPSMETER_REPORTING_ANALYST_CLICKHOUSE_URL must name the analyst user in prod (ADR 0051)")
        if self.clickhouse_topology == "cluster" and self.runtime.clickhouse_url is None:
            raise ValueError("OPSMETER_REPORTING_CLICKHOUSE_TOPOLOGY=cluster needs OPSMETER_CLICKHOUSE_URL (a server)")
        Fraction(self.spike_min_increase)
        return self

    @property
    def spike_rule(self) -> SpikeRule:
        return SpikeRule(Fraction(self.spike_min_increase), self.spike_min_delta_micro_usd)

    @property
    def workspace_sql_limits(self) -> AnalystLimits:
        return AnalystLimits(self.analyst_max_execution_s, self.analyst_max_memory_bytes, self.analyst_max_threads)

    @property
    def operator_sql_limits(self) -> AnalystLimits:
        return AnalystLimits(
            self.operator_sql_max_execution_s, self.operator_sql_max_memory_bytes, self.analyst_max_threads
        )

    @property
    def enterprise_retention(self) -> Retention:
        return Retention(self.enterprise_raw_retention_days, self.enterprise_summary_retention_days)
