"""The OTLP/HTTP bodies of ``POST /v1/traces`` as models, for its OpenAPI schema only (the route reads and writes
them through ``otlp/decode.py``). JSON as the OTLP "JSON Protobuf Encoding" writes it; protobuf is the same
message in binary."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Uint64 = Annotated[int, Field(ge=0, lt=2**64)] | Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]


class _Otlp(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class AnyValue(_Otlp):
    string_value: str | None = Field(default=None, alias="stringValue")
    bool_value: bool | None = Field(default=None, alias="boolValue")
    int_value: int | Annotated[str, Field(pattern=r"^-?[0-9]{1,19}$")] | None = Field(default=None, alias="intValue")
    double_value: float | None = Field(default=None, alias="doubleValue")
    array_value: dict[str, Any] | None = Field(default=None, alias="arrayValue")


class KeyValue(_Otlp):
    key: str
    value: AnyValue


class SpanStatus(_Otlp):
    code: int | None = Field(default=None, description="0 unset, 1 ok, 2 error")
    message: str | None = None


class OtlpSpanJson(_Otlp):
    trace_id: str = Field(alias="traceId", pattern=r"^[0-9a-fA-F]{32}$")
    span_id: str = Field(alias="spanId", pattern=r"^[0-9a-fA-F]{16}$")
    parent_span_id: str | None = Field(default=None, alias="parentSpanId", pattern=r"^([0-9a-fA-F]{16})?$")
    name: str = ""
    kind: int | None = None
    start_time_unix_nano: Uint64 = Field(default=0, alias="startTimeUnixNano")
    end_time_unix_nano: Uint64 = Field(default=0, alias="endTimeUnixNano")
    attributes: list[KeyValue] = []
    status: SpanStatus | None = None


class ScopeSpans(_Otlp):
    spans: list[OtlpSpanJson] = []


class Resource(_Otlp):
    attributes: list[KeyValue] = []


class ResourceSpans(_Otlp):
    resource: Resource | None = None
    scope_spans: list[ScopeSpans] = Field(default=[], alias="scopeSpans")


class ExportTraceRequest(_Otlp):
    """``ExportTraceServiceRequest``: spans grouped by resource and instrumentation scope."""

    resource_spans: list[ResourceSpans] = Field(default=[], alias="resourceSpans")


class OtlpStatus(BaseModel):
    """A refused export's body (``google.rpc.Status``), in the request's encoding."""

    code: int | None = None
    message: str | None = None
    details: list[dict[str, Any]] | None = None


class PartialSuccess(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    rejected_spans: str | int | None = Field(default=None, alias="rejectedSpans")
    error_message: str | None = Field(default=None, alias="errorMessage")


class ExportTraceAnswer(BaseModel):
    """``ExportTraceServiceResponse``: empty when every span was taken, else the spans rejected and why."""

    model_config = ConfigDict(populate_by_name=True)

    partial_success: PartialSuccess | None = Field(default=None, alias="partialSuccess")
