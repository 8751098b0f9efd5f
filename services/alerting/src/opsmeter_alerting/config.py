from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings


class AlertingSettings(ServiceSettings):
    """``OPSMETER_ALERTING_*``, plus ``OPSMETER_SMTP_URL`` (the SMTP server every email goes through)."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_ALERTING_", extra="ignore", frozen=True)

    port: int = 8082
    smtp_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPSMETER_SMTP_URL", "smtp_url"),
        description="smtp://[user:pass@]host:port (plain) or smtps://… (TLS); unset: email channels fail.",
    )
    smtp_from: str = "Opsmeter alerts <alerts@opsmeter.local>"
    reporting_url: str = "http://127.0.0.1:8084"
    send_timeout_s: float = 10.0
    max_attempts: int = Field(default=5, ge=1, le=20)
    retry_base_s: float = Field(default=2.0, gt=0)
    retry_cap_s: float = Field(default=600.0, gt=0)
    lease_s: float = Field(
        default=60.0, gt=0, description="A claimed delivery is tried again after this if its worker died."
    )
    disable_after_failures: int = Field(
        default=3, ge=1, description="Dead-lettered alerts in a row that disable a channel."
    )
    delivery_poll_s: float = Field(default=0.5, gt=0)
    schedule_poll_s: float = Field(default=20.0, gt=0)
