"""Settings shared by every service; each service subclasses with its own ``env_prefix``."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "prod"]


class RuntimeSettings(BaseSettings):
    """``OPSMETER_*`` variables every service reads; a service adds its own under ``OPSMETER_<SERVICE>_``."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_", extra="ignore", frozen=True)

    env: Environment = "dev"
    log_level: str = "INFO"
    data_dir: Path = Path(".data")
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_idempotent_producer: bool = Field(
        default=False, description="Enable on Apache Kafka; the local Tansu broker cannot (InitProducerId)."
    )
    kafka_send_timeout_s: float = Field(default=5.0, gt=0, description="How long a publish waits for the broker's ack.")
    kafka_delivery_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "How long the producer keeps trying to deliver a record it holds (aiokafka's request_timeout_ms) after "
            "its publisher stopped waiting; the idempotent producer keeps trying for ever. Longer than a broker "
            "stall the gateway must answer truthfully through (ADR 62)."
        ),
    )
    kafka_linger_ms: int = Field(
        default=1, ge=0, description="How long the producer waits for more records to share a batch (aiokafka)."
    )
    kafka_max_batch_bytes: int = Field(
        default=512 * 1024, gt=0, description="A record batch's size; under the broker's message.max.bytes."
    )
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    redis_url: str = "redis://127.0.0.1:16379/0"
    redis_timeout_s: float = Field(default=0.25, description="Socket timeout: a hung Redis must not hang ingest.")
    redis_cluster: bool = Field(
        default=False,
        description="OPSMETER_REDIS_URL names one node of a Redis Cluster: use redis-py's cluster client (ADR 0059).",
    )
    http_read_timeout_s: float = Field(
        default=10.0, gt=0, description="A request's head and body must arrive within this of its first byte."
    )
    clickhouse_url: str | None = Field(
        default=None,
        description="A ClickHouse server (http(s)://user:pass@host:8123/db); unset → embedded chDB.",
    )
    operator_token_sha256: str | None = Field(
        default=None, description="SHA-256 hex of the operator token that may create workspaces."
    )
    service_token: SecretStr | None = Field(
        default=None, description="The token this service presents to other services' read APIs."
    )
    service_token_sha256: str | None = Field(
        default=None, description="SHA-256 hex of the service token; it may read any workspace's reports."
    )

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Self:
        if self.env == "prod":
            if "127.0.0.1" in self.kafka_bootstrap or "localhost" in self.kafka_bootstrap:
                raise ValueError("OPSMETER_KAFKA_BOOTSTRAP must name the production brokers in prod")
            if self.operator_token_sha256 is None:
                raise ValueError("OPSMETER_OPERATOR_TOKEN_SHA256 is required in prod")
        return self

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.resolve()


class ServiceSettings(BaseSettings):
    """Base of each service's settings: its own ``OPSMETER_<SERVICE>_`` variables plus the shared runtime ones."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8080
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
