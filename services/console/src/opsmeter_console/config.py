import os
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from opsmeter_runtime.settings import ServiceSettings

WEB_DIST = Path(__file__).resolve().parents[2] / "web" / "dist"


def _local_url(port_variable: str, default_port: int) -> str:
    """The stack passes every service's port to every service; the console calls them on loopback."""
    return f"http://127.0.0.1:{os.environ.get(port_variable) or default_port}"


class ConsoleSettings(ServiceSettings):
    """``OPSMETER_CONSOLE_*``: where the built web app is and where the five services answer."""

    model_config = SettingsConfigDict(env_prefix="OPSMETER_CONSOLE_", extra="ignore", frozen=True)

    port: int = 8090
    web_dir: Path = Field(default=WEB_DIST, description="The built web app (npm run build in services/console/web).")
    cookie_secure: bool | None = Field(default=None, description="Secure flag of the session cookie; on in prod.")
    session_max_age_s: int = Field(default=8 * 3600, ge=60, le=30 * 86_400)
    upstream_timeout_s: float = Field(default=30.0, gt=0)
    gateway_url: str = Field(default_factory=lambda: _local_url("OPSMETER_INGEST_GATEWAY_PORT", 8080))
    policy_url: str = Field(default_factory=lambda: _local_url("OPSMETER_POLICY_ENGINE_PORT", 8081))
    alerting_url: str = Field(default_factory=lambda: _local_url("OPSMETER_ALERTING_PORT", 8082))
    billing_url: str = Field(default_factory=lambda: _local_url("OPSMETER_BILLING_PORT", 8083))
    reporting_url: str = Field(default_factory=lambda: _local_url("OPSMETER_REPORTING_PORT", 8084))

    @model_validator(mode="after")
    def _safe_in_prod(self) -> Self:
        if self.runtime.env == "prod" and self.cookie_secure is False:
            raise ValueError("OPSMETER_CONSOLE_COOKIE_SECURE cannot be false in prod: the session cookie holds a token")
        return self

    @property
    def secure_cookie(self) -> bool:
        return self.cookie_secure if self.cookie_secure is not None else self.runtime.env == "prod"

    @property
    def upstreams(self) -> dict[str, str]:
        """The proxy's service names (``/api/<name>/...``) and their base URLs."""
        return {
            "gateway": self.gateway_url.rstrip("/"),
            "policy": self.policy_url.rstrip("/"),
            "alerting": self.alerting_url.rstrip("/"),
            "billing": self.billing_url.rstrip("/"),
            "reporting": self.reporting_url.rstrip("/"),
        }
