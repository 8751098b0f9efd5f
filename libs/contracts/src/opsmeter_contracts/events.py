"""Event types. Names are dotted and past tense; a ``type`` is never renamed, only versioned."""

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from opsmeter_contracts.envelope import EventEnvelope, Payload
from opsmeter_contracts.registry import event

MetadataValue = str | int | float | bool | None


class LlmRequestIngestedPayload(Payload):
    """One accepted LLM call, as priced by the gateway. Money is integer micro-USD."""

    external_request_id: str = Field(min_length=1, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=128, description="The model name as the client sent it.")
    model_normalized: str = Field(min_length=1, max_length=128)
    endpoint_tag: str = Field(max_length=128, description="Product feature; 'unknown' when not sent.")
    prompt_version: str | None = Field(default=None, max_length=64)
    user_id: str = Field(max_length=128, description="End user (hashed by the client); 'unknown' when not sent.")
    input_tokens: int = Field(ge=0, le=10_000_000)
    output_tokens: int = Field(ge=0, le=10_000_000)
    total_tokens: int = Field(ge=0, le=20_000_000)
    cached_input_tokens: int = Field(default=0, ge=0, le=10_000_000)
    cache_write_input_tokens: int = Field(default=0, ge=0, le=10_000_000)
    cache_write_1h_input_tokens: int = Field(
        default=0,
        ge=0,
        le=10_000_000,
        description="Cache writes with a 1-hour TTL (Anthropic), part of cache_write_input_tokens; 0 when not sent.",
    )
    reasoning_tokens: int = Field(default=0, ge=0, le=10_000_000)
    latency_ms: int | None = Field(default=None, ge=0, le=3_600_000)
    status: Literal["success", "error"] = "success"
    error_code: str | None = Field(default=None, max_length=64)
    data_mode: Literal["real", "test", "demo"] = "real"
    environment: Literal["prod", "staging", "dev"] = "prod"
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    cost_micro_usd: int = Field(ge=0, description="Cost in integer micro-USD; 0 when the model is unpriced.")
    priced: bool
    price_catalog_version: str
    price_row: str | None = Field(
        default=None,
        max_length=300,
        description="The price row charged: 'provider/model' of the catalog, with '@date' of a dated period; "
        "None when unpriced.",
    )
    reported_cost_micro_usd: int | None = Field(
        default=None,
        ge=0,
        description="The cost the client reported (reportedCostUsd, e.g. a router's billed cost), kept beside "
        "the computed cost_micro_usd; None when not sent.",
    )
    price_tier_start_tokens: int | None = Field(
        default=None,
        ge=0,
        description="The context-size tier charged: the input-token count it starts above; None for the base tier.",
    )
    api_key_id: str


@event
class LlmRequestIngested(EventEnvelope[LlmRequestIngestedPayload]):
    type: Literal["telemetry.llm_request_ingested"] = "telemetry.llm_request_ingested"
    version: Literal[1] = 1


Plan = Literal["free", "starter", "pro", "team", "enterprise"]
RequestQuota = Annotated[int, Field(ge=0, le=10**12)]
"""Requests per calendar month; bounded so every consumer and store holds it exactly."""
RateLimit = Annotated[int, Field(ge=1, le=1_000_000)]
"""Requests per minute."""


class WorkspaceCreatedPayload(Payload):
    name: str = Field(min_length=1, max_length=128)
    plan: Plan
    rate_limit_per_minute: RateLimit | None = None
    monthly_request_quota: RequestQuota | None = None


@event
class WorkspaceCreated(EventEnvelope[WorkspaceCreatedPayload]):
    type: Literal["workspace.created"] = "workspace.created"
    version: Literal[1] = 1


class CredentialIssuedPayload(Payload):
    """A credential's public part and hash; the secret itself never leaves the issuing answer."""

    credential_id: str = Field(min_length=1, max_length=64)
    kind: Literal["api_key", "admin_token"]
    role: Literal["owner", "admin", "member", "ingest"]
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    display_prefix: str = Field(max_length=32)
    name: str = Field(default="", max_length=128)
    issued_by: str | None = Field(default=None, description="Credential id of the admin who issued it.")


@event
class CredentialIssued(EventEnvelope[CredentialIssuedPayload]):
    type: Literal["workspace.credential_issued"] = "workspace.credential_issued"
    version: Literal[1] = 1


class CredentialRevokedPayload(Payload):
    credential_id: str = Field(min_length=1, max_length=64)
    revoked_by: str | None = Field(default=None, description="Credential id of the admin who revoked it.")
    reason: Literal["revoked", "rotated"] = "revoked"


@event
class CredentialRevoked(EventEnvelope[CredentialRevokedPayload]):
    type: Literal["workspace.credential_revoked"] = "workspace.credential_revoked"
    version: Literal[1] = 1


class WorkspacePlanSetPayload(Payload):
    """An operator set the plan directly (before billing confirms one through Lemon Squeezy)."""

    plan: Plan
    rate_limit_per_minute: RateLimit | None = None
    monthly_request_quota: RequestQuota | None = None


@event
class WorkspacePlanSet(EventEnvelope[WorkspacePlanSetPayload]):
    type: Literal["workspace.plan_set"] = "workspace.plan_set"
    version: Literal[1] = 1


class TelemetryDataDeletedPayload(Payload):
    """Demo or test telemetry removed on request; real data is never deleted this way."""

    data_mode: Literal["test", "demo"]
    scope: Literal["workspace", "mine"]
    api_key_ids: list[str] = Field(default_factory=list, description="With scope 'mine': the caller's keys.")
    requested_by: str


@event
class TelemetryDataDeleted(EventEnvelope[TelemetryDataDeletedPayload]):
    type: Literal["telemetry.data_deleted"] = "telemetry.data_deleted"
    version: Literal[1] = 1


class PlanLimitReachedPayload(Payload):
    """The workspace used up its plan's request quota for the period: telemetry is paused, LLM calls continue."""

    plan: str = Field(max_length=32)
    monthly_request_quota: RequestQuota
    period: str = Field(pattern=r"^\d{4}-\d{2}$", description="The quota period, a calendar month (UTC).")
    period_end: AwareDatetime


@event
class PlanLimitReached(EventEnvelope[PlanLimitReachedPayload]):
    """Emitted by the gateway once per workspace and period, on ``policy.decisions``."""

    type: Literal["ingest.plan_limit_reached"] = "ingest.plan_limit_reached"
    version: Literal[1] = 1


AttributeName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/\-]+$")]
"""An OpenTelemetry attribute name (``user.id``, ``app.feature``)."""


class OtelAttributesSetPayload(Payload):
    """Where a workspace's OpenTelemetry spans say their endpoint tag, user and prompt version (ADR 58): the
    whole setting, so the last event per workspace is the current one. The first name a span has wins."""

    endpoint_tag_attributes: tuple[AttributeName, ...] = Field(max_length=10)
    endpoint_tag_from_root_span: bool = Field(description="Without such an attribute, the trace's root span name.")
    user_id_attributes: tuple[AttributeName, ...] = Field(max_length=10)
    prompt_version_attributes: tuple[AttributeName, ...] = Field(max_length=10)
    changed_by: str = Field(max_length=64, description="Credential id of the admin who set it.")


@event
class OtelAttributesSet(EventEnvelope[OtelAttributesSetPayload]):
    type: Literal["workspace.otel_attributes_set"] = "workspace.otel_attributes_set"
    version: Literal[1] = 1
