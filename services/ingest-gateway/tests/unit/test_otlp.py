"""OpenTelemetry ingest without a server: OTLP decoding (protobuf, JSON, gzip), spans mapped to ingest records,
and the export's answer from the ingest use case's outcomes (run on in-memory ports)."""

import gzip
import time
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from opsmeter_ingest.otlp.answers import export_answer
from opsmeter_ingest.otlp.decode import (
    BodyTooLarge,
    OtlpRejected,
    UnsupportedMediaType,
    decode_spans,
    decompress,
    encoding_of,
)
from opsmeter_ingest.otlp.mapping import (
    AttributeNames,
    MappedRequest,
    content_attribute,
    map_spans,
    reported_cost_usd,
    wanted_attributes,
)
from opsmeter_ingest.record import IngestRequest
from opsmeter_ingest.testing import InMemoryWorld
from opsmeter_runtime.auth import Principal

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
NOW_NS = time.time_ns()
CALLER = Principal(workspace_id="ws_abcdefgh12", credential_id="key_1", kind="api_key", role="ingest")


def value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, list | tuple):
        return AnyValue(array_value=ArrayValue(values=[value(i) for i in v]))
    return AnyValue(string_value=v)


def span(
    span_id: int,
    name: str,
    parent: int | None = None,
    *,
    status: int = Status.STATUS_CODE_UNSET,
    duration_ms: int = 930,
    attributes: dict[str, Any] | None = None,
) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        start_time_unix_nano=NOW_NS - duration_ms * 1_000_000,
        end_time_unix_nano=NOW_NS,
        status=Status(code=status),  # type: ignore[arg-type]
        attributes=[KeyValue(key=k, value=value(v)) for k, v in (attributes or {}).items()],
    )


def chat(span_id: int = 2, parent: int | None = None, extra: dict[str, Any] | None = None) -> Span:
    """A chat span as the official OpenAI instrumentation writes one (current names)."""
    fields: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": f"chatcmpl-{span_id}",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.usage.reasoning.output_tokens": 128,
        **(extra or {}),
    }
    return span(span_id, "chat gpt-4o-mini", parent, attributes=fields)


def request(*spans: Span, resource: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    for k, v in (resource or {}).items():
        resource_spans.resource.attributes.append(KeyValue(key=k, value=value(v)))
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def mapped(
    traces: ExportTraceServiceRequest | bytes, names: AttributeNames | None = None, encoding: Any = "protobuf"
) -> MappedRequest:
    names = names or AttributeNames()
    body = traces if isinstance(traces, bytes) else traces.SerializeToString()
    return map_spans(decode_spans(body, encoding, wanted_attributes(names)), names)


def documents(
    traces: ExportTraceServiceRequest | bytes, names: AttributeNames | None = None, encoding: Any = "protobuf"
) -> list[dict[str, Any]]:
    return [r.document for r in mapped(traces, names, encoding).records]


class TestDecode:
    def test_protobuf_gzip_and_json_give_the_same_request(self) -> None:
        traces = request(chat())
        protobuf = gzip.compress(traces.SerializeToString())
        from_protobuf = decompress(protobuf, "gzip", limit=1 << 20)
        assert encoding_of("application/x-protobuf") == "protobuf"
        as_json = {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "traceId": TRACE.hex(),
                                    "spanId": (2).to_bytes(8, "big").hex(),
                                    "name": "chat gpt-4o-mini",
                                    "startTimeUnixNano": str(
                                        traces.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano
                                    ),
                                    "endTimeUnixNano": NOW_NS,
                                    "kind": 3,
                                    "status": {"code": 0},
                                    "unknownField": {"is": "ignored"},
                                    "attributes": [
                                        {"key": kv.key, "value": _json_value(kv.value)}
                                        for kv in traces.resource_spans[0].scope_spans[0].spans[0].attributes
                                    ],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        assert encoding_of("application/json; charset=utf-8") == "json"
        from_json = documents(orjson.dumps(as_json), encoding="json")
        assert from_json == documents(from_protobuf)
        [document] = from_json
        assert document["metadata"]["otel.trace_id"] == TRACE.hex()

    def test_bad_bodies_are_refused_with_what_is_wrong(self) -> None:
        with pytest.raises(UnsupportedMediaType):
            encoding_of("text/plain")
        with pytest.raises(OtlpRejected, match="not an ExportTraceServiceRequest"):
            decode_spans(b"\xff\xff\xff", "protobuf", frozenset())
        with pytest.raises(OtlpRejected, match=r"spans\[0\]\.traceId must be 32 hex digits"):
            decode_spans(
                orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "AAAA", "spanId": "00"}]}]}]}),
                "json",
                frozenset(),
            )
        no_ids = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[Span()])])])
        with pytest.raises(OtlpRejected, match=r"spans\[0\] must have a 16-byte traceId"):
            decode_spans(no_ids.SerializeToString(), "protobuf", frozenset())
        with pytest.raises(OtlpRejected, match="not JSON"):
            decode_spans(b"{", "json", frozenset())
        with pytest.raises(OtlpRejected, match="not valid gzip"):
            decompress(b"not gzip", "gzip", limit=100)
        with pytest.raises(UnsupportedMediaType):
            decompress(b"x", "br", limit=100)

    def test_json_numbers_arrays_and_status_as_the_otlp_json_encoding_writes_them(self) -> None:
        def body(*extra: dict[str, Any]) -> bytes:
            span = {
                "traceId": TRACE.hex(),
                "spanId": "00000000000000aa",
                "parentSpanId": "",
                "name": "chat",
                "startTimeUnixNano": NOW_NS - 5_000_000,
                "endTimeUnixNano": str(NOW_NS),
                "status": {"code": 2, "message": "boom"},
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 7}},
                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "3"}},
                    {"key": "user.id", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                    {"key": "enduser.id", "value": {"stringValue": "u_2"}},
                    {"key": "gen_ai.input.messages", "value": {"kvlistValue": {"values": []}}},
                    *extra,
                ],
            }
            return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})

        [document] = documents(body(), encoding="json")
        assert (document["inputTokens"], document["outputTokens"], document["latencyMs"]) == (7, 3, 5)
        assert document["status"] == "error"
        assert document["userId"] == "u_2"  # an array is no user id: the next name is
        with pytest.raises(OtlpRejected, match=r"spans\[0\]\.attributes\[8\]\.value\.intValue must be a 64-bit"):
            documents(body({"key": "gen_ai.usage.cost", "value": {"intValue": "1.5"}}), encoding="json")

    def test_a_gzip_bomb_is_refused_before_it_is_unpacked(self) -> None:
        bomb = gzip.compress(b"\0" * (10 << 20))
        assert len(bomb) < 20_000
        with pytest.raises(BodyTooLarge):
            decompress(bomb, "gzip", limit=1 << 20)


def _json_value(v: AnyValue) -> dict[str, Any]:
    kind = v.WhichOneof("value")
    if kind == "int_value":
        return {"intValue": str(v.int_value)}
    if kind == "string_value":
        return {"stringValue": v.string_value}
    raise AssertionError(kind)


class TestMapping:
    def test_a_chat_span_becomes_a_record_with_the_calls_figures(self) -> None:
        [document] = documents(request(chat()))
        assert document["externalRequestId"] == "chatcmpl-2"
        assert (document["provider"], document["model"]) == ("openai", "gpt-4o-mini-2024-07-18")
        assert (document["inputTokens"], document["outputTokens"]) == (1200, 300)
        assert (document["cachedInputTokens"], document["reasoningTokens"]) == (1024, 128)
        assert document["latencyMs"] == 930
        assert "endpointTag" not in document, "a model span that is its own root names no feature: unknown"
        assert document.get("status", "success") == "success"
        IngestRequest.model_validate(document)

    def test_deprecated_names_map_like_current_ones(self) -> None:
        old = span(
            3,
            "openai.chat",
            attributes={
                "gen_ai.system": "openai",
                "llm.request.type": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.prompt_tokens": 500,
                "gen_ai.usage.completion_tokens": 40,
            },
        )
        [document] = documents(request(old))
        assert (document["provider"], document["model"], document["inputTokens"], document["outputTokens"]) == (
            "openai",
            "gpt-4o",
            500,
            40,
        )
        assert document["externalRequestId"] == f"otel:{TRACE.hex()}:{(3).to_bytes(8, 'big').hex()}"

    def test_openinference_names(self) -> None:
        llm = span(
            4,
            "ChatCompletion",
            attributes={
                "openinference.span.kind": "LLM",
                "llm.provider": "anthropic",
                "llm.model_name": "claude-3-5-haiku-latest",
                "llm.token_count.prompt": 2650,
                "llm.token_count.completion": 400,
                "llm.token_count.prompt_details.cache_read": 2000,
                "llm.token_count.prompt_details.cache_write": 500,
                "llm.cost.total": 0.0123,
                "llm.input_messages.0.message.content": "secret prompt",
                "input.value": "secret prompt",
                "output.value": "secret answer",
            },
        )
        [document] = documents(request(llm))
        assert (document["provider"], document["inputTokens"], document["outputTokens"]) == ("anthropic", 2650, 400)
        assert (document["cachedInputTokens"], document["cacheWriteInputTokens"]) == (2000, 500)
        assert "secret" not in orjson.dumps(document).decode()
        assert document["reportedCostUsd"] == "0.0123"

    @pytest.mark.parametrize(
        ("attribute", "decimal"),
        [
            (0.0123, "0.0123"),
            (0.1 + 0.2, "0.3"),
            (1.23e-05, "0.0000123"),
            (2, "2"),
            ("0.5", "0.5"),
            (-1.0, None),
            (1e12, None),
            (float("nan"), None),
            ("abc", None),
            (True, None),
        ],
    )
    def test_a_reported_cost_as_the_records_decimal_string(self, attribute: Any, decimal: str | None) -> None:
        assert reported_cost_usd(attribute) == decimal

    @pytest.mark.parametrize(
        "name", ["gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens"]
    )
    def test_cache_writes_are_read_under_either_name(self, name: str) -> None:
        writes = chat(extra={"gen_ai.provider.name": "anthropic", "gen_ai.usage.input_tokens": 150, name: 1500})
        [document] = documents(request(writes))
        assert document["cacheWriteInputTokens"] == 1500
        assert document["inputTokens"] == 150 + 1024 + 1500  # the call's input, its cache reads and its writes

    def test_cache_parts_reported_apart_are_added_to_input(self) -> None:
        anthropic_style = chat(
            extra={
                "gen_ai.provider.name": "anthropic",
                "gen_ai.usage.input_tokens": 150,
                "gen_ai.usage.cache_read.input_tokens": 2000,
                "gen_ai.usage.cache_creation.input_tokens": 500,
                "gen_ai.usage.reasoning.output_tokens": 0,
            }
        )
        [document] = documents(request(anthropic_style))
        assert document["inputTokens"] == 2650
        IngestRequest.model_validate(document)

    def test_agent_tool_and_workflow_spans_are_skipped_and_attribution_comes_from_ancestors(self) -> None:
        root = span(1, "POST /checkout", attributes={"user.id": "u_5f2c", "opsmeter.prompt_version": "v12"})
        agent = span(10, "invoke_agent shopper", 1, attributes={"gen_ai.operation.name": "invoke_agent"})
        tool = span(11, "execute_tool lookup", 10, attributes={"gen_ai.operation.name": "execute_tool"})
        chain = span(12, "chain", 10, attributes={"openinference.span.kind": "CHAIN"})
        traces = request(root, agent, tool, chain, chat(20, 10), chat(21, 10))
        found = mapped(traces)
        assert found.skipped == 4
        assert [r.document["externalRequestId"] for r in found.records] == ["chatcmpl-20", "chatcmpl-21"]
        for record in found.records:
            assert record.document["endpointTag"] == "POST /checkout"
            assert (record.document["userId"], record.document["promptVersion"]) == ("u_5f2c", "v12")

    def test_a_workspaces_own_attribute_names(self) -> None:
        call = chat(extra={"app.feature": "checkout.ai_summary", "opsmeter.endpoint_tag": "ignored", "app.user": 4711})
        names = AttributeNames(endpoint_tag=("app.feature",), user_id=("app.user",), prompt_version=())
        [document] = documents(request(call, resource={"app.prompt_version": "v3"}), names)
        assert (document["endpointTag"], document["userId"]) == ("checkout.ai_summary", "4711")
        assert "promptVersion" not in document
        names = AttributeNames(prompt_version=("app.prompt_version",), endpoint_tag_from_root_span=False)
        [document] = documents(request(chat(5, parent=99), resource={"app.prompt_version": "v3"}), names)
        assert document["promptVersion"] == "v3"
        assert "endpointTag" not in document

    def test_no_root_span_name_when_the_root_is_not_in_the_request(self) -> None:
        [document] = documents(request(chat(5, parent=99)))
        assert "endpointTag" not in document

    def test_an_error_span(self) -> None:
        failed = span(
            6,
            "chat gpt-4o",
            status=Status.STATUS_CODE_ERROR,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "error.type": "RateLimitError",
            },
        )
        [document] = documents(request(failed))
        assert (document["status"], document["errorCode"]) == ("error", "RateLimitError")
        assert (document["inputTokens"], document["outputTokens"]) == (0, 0)

    def test_content_attributes_are_never_read_nor_configurable(self) -> None:
        for name in (
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.system_instructions",
            "gen_ai.prompt.0.content",
            "gen_ai.completion.0.content",
            "llm.input_messages.0.message.content",
            "llm.output_messages.0.message.content",
            "input.value",
            "output.value",
            "app.prompt",
            "app.messages",
        ):
            assert content_attribute(name), name
        for name in ("llm.token_count.prompt", "gen_ai.usage.input_tokens", "user.id", "opsmeter.endpoint_tag"):
            assert not content_attribute(name), name
        leaky = chat(extra={"app.prompt": "secret", "gen_ai.input.messages": "secret"})
        [document] = documents(request(leaky), AttributeNames(endpoint_tag=("app.prompt",)))
        assert "secret" not in orjson.dumps(document).decode()


class World(InMemoryWorld):
    async def export(self, traces: ExportTraceServiceRequest) -> Any:
        records = mapped(traces).records
        result = await self.ingestor.ingest(CALLER, [r.document for r in records])
        return export_answer(records, result)


class TestExportAnswer:
    async def test_all_taken(self) -> None:
        world = World()
        answer = await world.export(request(chat(2), chat(3)))
        assert (answer.status, answer.rejected, answer.message) == (200, 0, "")
        assert len(world.sink.published) == 2

    async def test_spans_over_the_plan_limit_are_rejected_with_the_reason(self) -> None:
        world = World(quota_limit=1)
        answer = await world.export(request(chat(2), chat(3)))
        assert (answer.status, answer.rejected) == (200, 1)
        assert f"span {(3).to_bytes(8, 'big').hex()}: plan_limit_reached" in answer.message

    async def test_an_invalid_span_is_rejected_naming_the_field(self) -> None:
        no_model = span(7, "chat", attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"})
        answer = await World().export(request(no_model, chat(2)))
        assert (answer.status, answer.rejected) == (200, 1)
        assert "invalid_payload (model: is required)" in answer.message

    async def test_a_rate_limited_span_makes_the_export_429_and_its_retry_counts_each_span_once(self) -> None:
        world = World(rate_limit=4)
        await world.export(request(chat(1)))
        first = await world.export(request(chat(2), chat(3), chat(4), chat(5)))
        assert first.status == 429
        assert first.retry_after_s is not None
        assert first.retry_after_s >= 1
        assert len(world.sink.published) == 4
        world.admission.rate_used = 0  # the next window
        again = await world.export(request(chat(2), chat(3), chat(4), chat(5)))
        assert (again.status, again.rejected) == (200, 0)
        assert len(world.sink.published) == 5

    async def test_an_export_larger_than_a_minute_allows_is_not_retried_forever(self) -> None:
        world = World(rate_limit=3)
        answer = await world.export(request(chat(2), chat(3), chat(4), chat(5)))
        assert (answer.status, answer.rejected) == (200, 1)
        assert "rate_limited" in answer.message
        assert len(world.sink.published) == 3

    async def test_spans_that_cannot_be_made_durable_make_the_export_503_and_its_retry_takes_them(self) -> None:
        world = World()
        world.sink.full = True
        answer = await world.export(request(chat(2), chat(3)))
        assert answer.status == 503
        assert answer.retry_after_s == 5
        world.sink.full = False
        again = await world.export(request(chat(2), chat(3)))
        assert (again.status, again.rejected) == (200, 0)
        assert len(world.sink.published) == 2

    async def test_spans_spooled_while_kafka_is_away_are_taken(self) -> None:
        world = World()
        world.sink.kafka_down = True
        answer = await world.export(request(chat(2)))
        assert (answer.status, answer.rejected) == (200, 0)
        assert len(world.sink.spooled) == 1
