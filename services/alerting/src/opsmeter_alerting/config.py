from pathlib import Path
from typing import Self

from cryptography.fernet import Fernet
from pydantic import AliasChoices, Field, SecretStr, model_validator
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
    secrets_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPSMETER_SECRETS_KEY", "secrets_key"),
        description="Fernet key(s), comma-separated, newest first, sealing channel secrets at rest; "
        "unset outside prod: generated into the data dir.",
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
    allow_private_destinations: bool = Field(
        default=False,
        description="Let webhook and Slack channels reach loopback, private, link-local and other non-public "
        "addresses: for the local stack and tests, whose receivers listen on 127.0.0.1. Refused in prod.",
    )

    @model_validator(mode="after")
    def _secrets_key_in_prod(self) -> Self:
        if self.runtime.env == "prod" and self.secrets_key is None:
            raise ValueError("OPSMETER_SECRETS_KEY is required in prod (channel secrets are sealed with it)")
        if self.runtime.env == "prod" and self.allow_private_destinations:
            raise ValueError(
                "OPSMETER_ALERTING_ALLOW_PRIVATE_DESTINATIONS must be off in prod "
                "(channel URLs could reach internal services)"
            )
        return self

    def sealing_keys(self) -> str:
        """The configured keys, or outside prod the data dir's own (made once, readable by this user only)."""
        if self.secrets_key is not None:
            return self.secrets_key.get_secret_value()
        path: Path = self.runtime.resolved_data_dir / "secrets-key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_bytes(Fernet.generate_key())
        return path.read_text().strip()
