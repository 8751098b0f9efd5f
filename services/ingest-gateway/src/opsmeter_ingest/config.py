import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """``OPSMETER_INGEST_GATEWAY_*``: where the gateway listens and its request limits."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_INGEST_GATEWAY_", extra="ignore", frozen=True)

    port: int = 8080
    workers: int = Field(
        default=1, ge=1, le=64, description="Processes sharing the port, each with its own spool directory."
    )
    max_body_bytes: int = 64 * 1024
    max_batch_bytes: int = 1024 * 1024
    max_batch_events: int = 500
    otlp_max_body_bytes: int = Field(default=4 * 1024 * 1024, description="An OTLP export as sent (compressed).")
    otlp_max_decoded_bytes: int = Field(default=16 * 1024 * 1024, description="An OTLP export once decompressed.")
    default_rate_limit_per_minute: int = 120
    default_monthly_quota: int = 10_000
    publish_timeout_s: float = 0.25
    admission_timeout_s: float = Field(default=0.1, gt=0, description="Deadline of the admission script's reply.")
    admission_probe_interval_s: float = Field(
        default=0.5, gt=0, description="While Redis is away, one request in this interval tries it again."
    )
    spool_max_bytes: int = 256 * 1024 * 1024
    instance: str = Field(default_factory=socket.gethostname, description="Names this process's spool directory.")
    demo_events_per_day: int = Field(
        default=100_000, ge=0, description="Demo events one workspace may load per UTC day (POST /v1/ingest/demo)."
    )
    max_timestamp_age_s: int = 7 * 24 * 3600
    max_timestamp_skew_s: int = 5 * 60
