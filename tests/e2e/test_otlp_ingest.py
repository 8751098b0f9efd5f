"""OpenTelemetry ingest end to end (issue 25): the real ``openai`` package, instrumented by the official
OpenTelemetry instrumentation and exported by the real OTLP/HTTP exporter (protobuf, gzip), against the provider
double; OpenInference spans in the JSON encoding; the plan limit and the rate limit as an exporter sees them."""

import base64
import gzip
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import openai
import pytest
from genai_prices import Usage, calc_price
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from opsmeter_runtime.http_double import LocalHttpDouble
from opsmeter_runtime.provider_double import ProviderDouble
from tests.conftest import RunningStack
from tests.e2e.test_sdk_python import eventually, workspace
from tests.e2e.test_sdk_wrappers import micro, rows

SECRET = "zebra-4711"
"""In every prompt: captured into the spans, and never to be found in what Opsmeter stores or logs."""
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": f"Summarise the order of {SECRET}."}]


@dataclass
class Exchange:
    """One export as the proxy saw it: what the exporter sent, what the gateway said, what the exporter got."""

    headers: dict[str, str]
    body: bytes
    gateway_status: int
    gateway_headers: httpx.Headers
    answered_status: int
    at: float


class ExportProxy(LocalHttpDouble):
    """Between the exporter and the gateway. ``lose_next_answers(n)``: the next n exports reach the gateway, but the
    exporter is answered 503 (``Retry-After: 1``) as if the gateway's answer were lost on the way back: the exporter
    then sends the same spans again, which the gateway has already taken."""

    thread_name = "export-proxy"

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.exchanges: list[Exchange] = []
        self._lost = 0
        self._lock = threading.Lock()

    def lose_next_answers(self, n: int) -> None:
        with self._lock:
            self._lost = n

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                forwarded = {k: v for k, v in headers.items() if k in ("content-type", "content-encoding", "x-api-key")}
                answer = httpx.post(proxy.target + self.path, content=raw, headers=forwarded, timeout=30)
                with proxy._lock:
                    lose = proxy._lost > 0
                    proxy._lost -= lose
                status, body = (503, b"") if lose else (answer.status_code, answer.content)
                out = httpx.Headers({"Retry-After": "1"} if lose else answer.headers)
                proxy.exchanges.append(
                    Exchange(headers, raw, answer.status_code, answer.headers, status, time.monotonic())
                )
                self.send_response(status)
                for name in ("Content-Type", "Retry-After"):
                    value = out.get(name)
                    if value:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class Exporters(SpanExporter):
    """The tracer provider's one exporter, swapped per test (the instrumentation is installed once)."""

    def __init__(self) -> None:
        self.current: SpanExporter | None = None
        self.results: list[SpanExportResult] = []

    def export(self, spans: Any) -> SpanExportResult:
        assert self.current is not None
        result = self.current.export(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        if self.current is not None:
            self.current.shutdown()


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderDouble]:
    with ProviderDouble() as double:
        yield double


@pytest.fixture(scope="module")
def proxy(stack: RunningStack) -> Iterator[ExportProxy]:
    with ExportProxy(stack.url("ingest-gateway")) as running:
        yield running


@pytest.fixture(scope="module")
def exporters() -> Iterator[Exporters]:
    chosen = Exporters()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(chosen))
    instrumentor = OpenAIInstrumentor()
    with pytest.MonkeyPatch.context() as env:  # the instrumentation captures prompts and completions into spans
        env.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        env.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
        instrumentor.instrument(tracer_provider=provider)
        yield chosen
        instrumentor.uninstrument()
    provider.shutdown()


def usage_by(stack: RunningStack, ws: dict[str, Any], group_by: str, requests: int) -> dict[str, Any]:
    def query() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/usage",
            params={"groupBy": group_by},
            headers={"Authorization": f"Bearer {ws['adminToken']}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body if body["totals"]["requests"] >= requests else None

    found: dict[str, Any] = eventually(query, timeout=30)
    return found


def traces_url(stack: RunningStack) -> str:
    return f"{stack.url('ingest-gateway')}/v1/traces"


class TestOfficialOpenAIInstrumentation:
    def test_calls_reach_usage_once_each_even_when_the_exporter_retries(
        self,
        stack: RunningStack,
        fake: ProviderDouble,
        proxy: ExportProxy,
        exporters: Exporters,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        ws = workspace(stack, plan="team")
        # Configured as the README says: the two environment variables (and gzip).
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", proxy.url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"X-API-Key={ws['apiKey']}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        exporters.current = OTLPSpanExporter()
        proxy.exchanges.clear()
        proxy.lose_next_answers(1)
        client = openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass

        assert exporters.results[-2:] == [SpanExportResult.SUCCESS, SpanExportResult.SUCCESS]
        first, retried, second = proxy.exchanges
        assert (first.answered_status, retried.answered_status, second.answered_status) == (503, 200, 200)
        assert first.gateway_status == 200, "the first export reached the gateway, only its answer was lost"
        assert retried.body == first.body
        assert first.headers["content-type"] == "application/x-protobuf"
        assert first.headers["content-encoding"] == "gzip"
        sent = ExportTraceServiceRequest.FromString(gzip.decompress(first.body))
        [span] = [s for r in sent.resource_spans for sc in r.scope_spans for s in sc.spans]
        assert {a.key for a in span.attributes} >= {"gen_ai.operation.name", "gen_ai.usage.input_tokens"}
        assert SECRET.encode() in gzip.decompress(first.body), "the span carries the prompt"

        usage = fake.openai_usage
        found = usage_by(stack, ws, "model", 2)
        time.sleep(1.0)  # a retried span counted twice would show up by now
        found = usage_by(stack, ws, "model", 2)
        expected_cost = calc_price(
            Usage(
                input_tokens=usage.prompt_tokens,
                cache_read_tokens=usage.cached_tokens,
                output_tokens=usage.completion_tokens,
            ),
            model_ref="gpt-4o-mini",
            provider_id="openai",
        ).total_price
        [row] = found["rows"]
        assert row["key"] == "gpt-4o-mini"
        assert row["requests"] == 2
        assert (row["inputTokens"], row["outputTokens"]) == (2 * usage.prompt_tokens, 2 * usage.completion_tokens)
        assert row["costMicroUsd"] == 2 * micro(expected_cost)
        [stored, _] = rows(stack, ws, "unknown", 2)  # the model span is its own root: no feature to name
        assert stored["cached_input_tokens"] == usage.cached_tokens
        assert stored["reasoning_tokens"] == usage.reasoning_tokens
        assert SECRET not in json.dumps(stored)
        assert SECRET not in (stack.config.data_dir / "logs" / "ingest-gateway.log").read_text()


def llm_span(
    trace_id: str, span_id: str, parent: str, start_ns: int, *, model: str, prompt: int, completion: int
) -> dict[str, Any]:
    """An LLM span as OpenInference instrumentations write it, in the OTLP JSON encoding."""
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": "ChatCompletion",
        "kind": 1,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 640_000_000),
        "status": {"code": 1},
        "attributes": [
            {"key": "openinference.span.kind", "value": {"stringValue": "LLM"}},
            {"key": "llm.provider", "value": {"stringValue": "openai"}},
            {"key": "llm.system", "value": {"stringValue": "openai"}},
            {"key": "llm.model_name", "value": {"stringValue": model}},
            {"key": "llm.token_count.prompt", "value": {"intValue": str(prompt)}},
            {"key": "llm.token_count.completion", "value": {"intValue": completion}},
            {"key": "llm.token_count.total", "value": {"intValue": str(prompt + completion)}},
            {"key": "llm.cost.total", "value": {"doubleValue": 0.00042}},
            {"key": "input.value", "value": {"stringValue": f"Summarise the order of {SECRET}."}},
            {"key": "llm.input_messages.0.message.content", "value": {"stringValue": f"The order of {SECRET}"}},
            {"key": "output.value", "value": {"stringValue": f"{SECRET} ships today."}},
        ],
    }


def other_span(trace_id: str, span_id: str, parent: str, start_ns: int, name: str, **attributes: str) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 2_000_000_000),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()],
    }


def agent_trace(feature: str, user: str) -> dict[str, Any]:
    """A workflow: a root request span, an agent, a tool call, and two LLM calls under the agent."""
    trace_id, start = uuid.uuid4().hex, time.time_ns() - 3_000_000_000
    root, agent, tool, llm_a, llm_b = (uuid.uuid4().hex[:16] for _ in range(5))
    spans = [
        other_span(trace_id, root, "", start, "POST /orders/summary", **{"app.feature": feature, "user.id": user}),
        other_span(trace_id, agent, root, start, "invoke_agent planner", **{"openinference.span.kind": "AGENT"}),
        other_span(
            trace_id, tool, agent, start, "execute_tool lookup_order", **{"gen_ai.operation.name": "execute_tool"}
        ),
        llm_span(trace_id, llm_a, agent, start, model="gpt-4o-mini", prompt=812, completion=164),
        llm_span(trace_id, llm_b, agent, start, model="gpt-4o-mini", prompt=400, completion=100),
    ]
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
                "scopeSpans": [{"scope": {"name": "openinference.instrumentation.openai"}, "spans": spans}],
            }
        ]
    }


def skipped_spans(stack: RunningStack) -> float:
    metrics = httpx.get(f"{stack.url('ingest-gateway')}/metrics").text
    found = re.search(r'^opsmeter_otlp_spans_total\{kind="skipped"\} (\S+)$', metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


class TestOpenInferenceJson:
    def test_only_the_llm_spans_of_an_agent_trace_are_counted(self, stack: RunningStack) -> None:
        ws = workspace(stack, plan="team")
        admin = {"Authorization": f"Bearer {ws['adminToken']}"}
        settings_url = f"{stack.url('ingest-gateway')}/v1/workspaces/{ws['workspaceId']}/otel-attributes"
        assert httpx.get(settings_url, headers=admin).json()["endpointTagAttributes"] == ["opsmeter.endpoint_tag"]
        refused = httpx.put(settings_url, headers=admin, json={"endpointTagAttributes": ["input.value"]})
        assert refused.status_code == 422, refused.text
        assert "endpointTagAttributes" in refused.text
        changed = httpx.put(settings_url, headers=admin, json={"endpointTagAttributes": ["app.feature"]})
        assert changed.status_code == 200, changed.text
        assert changed.json()["userIdAttributes"] == ["user.id", "enduser.id"]

        skipped_before = skipped_spans(stack)
        body = agent_trace("orders.summary", "u_5f2c")
        headers = {"X-API-Key": ws["apiKey"], "Content-Type": "application/json"}
        for _ in range(2):  # sent twice, as an exporter retrying would: counted once
            answer = httpx.post(traces_url(stack), content=json.dumps(body), headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/json"
            assert answer.json() == {}

        assert skipped_spans(stack) - skipped_before == 6, "the root, agent and tool spans of both exports"
        found = usage_by(stack, ws, "endpointTag", 2)
        time.sleep(1.0)
        found = usage_by(stack, ws, "endpointTag", 2)
        [row] = found["rows"]
        assert (row["key"], row["requests"]) == ("orders.summary", 2)
        assert (row["inputTokens"], row["outputTokens"]) == (812 + 400, 164 + 100)
        expected = sum(
            micro(
                calc_price(
                    Usage(input_tokens=i, output_tokens=o), model_ref="gpt-4o-mini", provider_id="openai"
                ).total_price
            )
            for i, o in ((812, 164), (400, 100))
        )
        assert row["costMicroUsd"] == expected
        # llm.cost.total (0.00042 per span) is the cost the instrumentation reported, kept beside the computed one
        assert (row["reportedCostUsd"], row["reportedRequests"]) == ("0.00084", 2)
        stored = rows(stack, ws, "orders.summary", 2)
        assert {r["user_id"] for r in stored} == {"u_5f2c"}
        assert all(SECRET not in json.dumps(r) for r in stored)
        assert SECRET not in (stack.config.data_dir / "logs" / "ingest-gateway.log").read_text()


def encoded(*spans: dict[str, Any]) -> bytes:
    """Spans (OTLP JSON) as the protobuf body an exporter sends (protobuf's JSON mapping takes ids in base64)."""
    for span in spans:
        for key in ("traceId", "spanId", "parentSpanId"):
            if span.get(key):
                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    request = ExportTraceServiceRequest()
    json_format.ParseDict({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}, request)
    return request.SerializeToString()


class TestLimits:
    def test_a_span_over_the_plan_limit_is_rejected_in_partial_success(self, stack: RunningStack) -> None:
        ws = workspace(stack, plan="free", monthlyRequestQuota=1)
        trace_id, start = uuid.uuid4().hex, time.time_ns() - 1_000_000_000
        first, second = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
        body = encoded(
            llm_span(trace_id, first, "", start, model="gpt-4o-mini", prompt=10, completion=5),
            llm_span(trace_id, second, "", start, model="gpt-4o-mini", prompt=10, completion=5),
        )
        answer = httpx.post(
            traces_url(stack),
            content=gzip.compress(body),
            headers={"X-API-Key": ws["apiKey"], "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/x-protobuf"
        partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
        assert partial.rejected_spans == 1
        assert f"span {second}: plan_limit_reached" in partial.error_message
        assert answer.headers["X-RateLimit-Limit"] == "120"

    def test_the_exporter_is_answered_429_with_retry_after_on_the_rate_limit(
        self, stack: RunningStack, fake: ProviderDouble, proxy: ExportProxy, exporters: Exporters
    ) -> None:
        ws = workspace(stack, plan="team", rateLimitPerMinute=2)
        exporters.current = OTLPSpanExporter(
            endpoint=f"{proxy.url}/v1/traces", headers={"X-API-Key": ws["apiKey"]}, timeout=3
        )
        proxy.exchanges.clear()
        client = openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)
        for _ in range(4):  # two per minute: one of the third and fourth is over, whichever minute they fall in
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        limited = [e for e in proxy.exchanges if e.answered_status == 429]
        assert limited, [e.answered_status for e in proxy.exchanges]
        retry_after = int(limited[0].gateway_headers["retry-after"])
        assert 1 <= retry_after <= 60
        resent = [e for e in proxy.exchanges if e.body == limited[0].body and e.at > limited[0].at]
        # The exporter waits Retry-After before sending the spans again, or gives up when that is past its timeout.
        assert all(e.at - limited[0].at >= retry_after - 0.1 for e in resent)
        assert resent or SpanExportResult.FAILURE in exporters.results[-4:]


class TestRefusals:
    def test_bad_requests_get_an_otlp_status_in_their_encoding(self, stack: RunningStack) -> None:
        ws = stack.create_workspace()
        key = {"X-API-Key": ws["apiKey"]}
        no_key = httpx.post(traces_url(stack), content=b"", headers={"Content-Type": "application/x-protobuf"})
        assert no_key.status_code == 401
        assert Status.FromString(no_key.content).code == 16
        garbage = httpx.post(
            traces_url(stack), content=b"\xff\xff", headers={**key, "Content-Type": "application/x-protobuf"}
        )
        assert garbage.status_code == 400
        assert "ExportTraceServiceRequest" in Status.FromString(garbage.content).message
        wrong = httpx.post(traces_url(stack), content=b"{}", headers={**key, "Content-Type": "text/plain"})
        assert wrong.status_code == 415
        assert wrong.json()["code"] == 3
        bomb = gzip.compress(b"\0" * (17 << 20))  # 17 MiB of zeros in ~17 KB
        too_large = httpx.post(
            traces_url(stack),
            content=bomb,
            headers={**key, "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
        assert too_large.status_code == 413
        assert "decompressed" in Status.FromString(too_large.content).message
        empty = httpx.post(traces_url(stack), content=b"{}", headers={**key, "Content-Type": "application/json"})
        assert (empty.status_code, empty.json()) == (200, {})
