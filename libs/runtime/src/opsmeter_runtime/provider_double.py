"""An LLM-provider test double that speaks HTTP: OpenAI chat completions and Anthropic messages.

A real local server (stdlib, in a thread) for tests of clients that call providers (the SDKs' wrappers, an
OpenTelemetry ingest). The real ``openai`` and ``anthropic`` packages (and npm clients) talk to it:

- ``POST /v1/chat/completions``: a ``chat.completion`` object with ``usage.prompt_tokens_details.cached_tokens``
  and ``usage.completion_tokens_details.reasoning_tokens``; with ``stream: true`` the ``chat.completion.chunk``
  SSE stream, ending with a usage chunk (``choices: []``) when ``stream_options.include_usage`` is set, then
  ``data: [DONE]``.
- ``POST /v1/messages``: a ``message`` object whose ``usage`` has ``input_tokens`` apart from
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens``; with ``stream: true`` the event stream
  ``message_start`` (input usage) … ``content_block_delta`` … ``message_delta`` (output usage) ``message_stop``.
- Every call is counted and its JSON body kept (:attr:`ProviderDouble.calls`, and ``GET /_double/calls`` for
  clients in other processes); :meth:`fail_next` makes the next calls answer an error status with the
  provider's error shape.
"""

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from opsmeter_runtime.http_double import LocalHttpDouble

REPLY = "The quick brown fox jumps over the lazy dog."


@dataclass
class OpenAIUsage:
    """What the double reports: ``prompt_tokens`` includes the cached ones, as OpenAI counts them."""

    prompt_tokens: int = 1200
    completion_tokens: int = 300
    cached_tokens: int = 1024
    reasoning_tokens: int = 128

    def body(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


@dataclass
class AnthropicUsage:
    """What the double reports: ``input_tokens`` excludes cache reads and writes, as Anthropic counts them."""

    input_tokens: int = 150
    cache_read_input_tokens: int = 2000
    cache_creation_input_tokens: int = 500
    output_tokens: int = 400

    def body(self, *, output_tokens: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": "standard",
        }


@dataclass(frozen=True)
class RecordedCall:
    provider: str
    path: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class ProviderDouble(LocalHttpDouble):
    """Start with ``with ProviderDouble() as fake:``; OpenAI's base URL is ``fake.openai_url``, Anthropic's
    ``fake.url``."""

    def __init__(self, *, port: int = 0) -> None:
        self.openai_usage = OpenAIUsage()
        self.anthropic_usage = AnthropicUsage()
        self.calls: list[RecordedCall] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        super().__init__(port=port)

    thread_name = "provider-double"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def openai_url(self) -> str:
        """The ``base_url`` an OpenAI client takes (it appends ``/chat/completions``)."""
        return f"{self.url}/v1"

    def fail_next(self, *statuses: int) -> None:
        """The next calls answer these statuses (e.g. 429, 500) with the provider's error body."""
        with self._lock:
            self._failures.extend(statuses)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._failures.clear()

    def calls_to(self, provider: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.provider == provider]

    # --- answers -----------------------------------------------------------------------------------------

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], Iterator[bytes]]:
        provider = "openai" if path.endswith("/chat/completions") else "anthropic" if path.endswith("/messages") else ""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        with self._lock:
            self.calls.append(RecordedCall(provider or "unknown", path, body, headers))
            failure = self._failures.pop(0) if self._failures else None
        if not provider or not isinstance(body, dict):
            return _json(404 if not provider else 400, {"error": {"message": "not found", "type": "not_found_error"}})
        if failure is not None:
            return _json(failure, _error(provider, failure), {"retry-after": "0"} if failure == 429 else None)
        if provider == "openai":
            return self._openai(body)
        return self._anthropic(body)

    def _openai(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Iterator[bytes]]:
        model = str(body.get("model") or "gpt-4o-mini")
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        usage = self.openai_usage.body()
        if not body.get("stream"):
            return _json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": REPLY, "refusal": None, "annotations": []},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": "fp_double",
                },
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[dict[str, Any]], chunk_usage: dict[str, Any] | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_double",
                "choices": choices,
            }
            if include_usage:
                data["usage"] = chunk_usage
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        def events() -> Iterator[bytes]:
            yield chunk(
                [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}, "finish_reason": None}]
            )
            for word in REPLY.split(" "):
                yield chunk([{"index": 0, "delta": {"content": word + " "}, "logprobs": None, "finish_reason": None}])
            yield chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
            if include_usage:
                yield chunk([], usage)
            yield b"data: [DONE]\n\n"

        return 200, {"Content-Type": "text/event-stream"}, events()

    def _anthropic(self, body: dict[str, Any]) -> tuple[int, dict[str, str], Iterator[bytes]]:
        model = str(body.get("model") or "claude-3-5-haiku-latest")
        usage = self.anthropic_usage
        message: dict[str, Any] = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": REPLY}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage.body(),
        }
        if not body.get("stream"):
            return _json(200, message)

        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        def events() -> Iterator[bytes]:
            start = {**message, "content": [], "stop_reason": None, "usage": usage.body(output_tokens=1)}
            yield event("message_start", {"type": "message_start", "message": start})
            yield event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
            yield event("ping", {"type": "ping"})
            for word in REPLY.split(" "):
                delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word + " "}}
                yield event("content_block_delta", delta)
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            yield event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": usage.output_tokens},
                },
            )
            yield event("message_stop", {"type": "message_stop"})

        return 200, {"Content-Type": "text/event-stream"}, events()


def _json(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Iterator[bytes]]:
    return status, {"Content-Type": "application/json", **(headers or {})}, iter([json.dumps(payload).encode()])


def _error(provider: str, status: int) -> dict[str, Any]:
    if provider == "anthropic":
        kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": "Injected failure"}}
    return {"error": {"message": "Injected failure", "type": "server_error", "param": None, "code": None}}


def _handler_for(double: ProviderDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/_double/calls":
                self.send_error(404)
                return
            with double._lock:
                data = json.dumps([{"provider": c.provider, "path": c.path, "body": c.body} for c in double.calls])
            encoded = data.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, parts = double._answer(self.path.split("?")[0], headers, raw)
            self.send_response(status)
            for name, value in out_headers.items():
                self.send_header(name, value)
            if out_headers.get("Content-Type") == "text/event-stream":
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                for part in parts:
                    self.wfile.write(part)
                    self.wfile.flush()
                self.close_connection = True
                return
            data = b"".join(parts)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main() -> None:
    """``python -m opsmeter_runtime.provider_double [PORT]``: serve the double until Ctrl-C."""
    import sys

    with ProviderDouble(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as double:
        double.serve_until_interrupted({"openaiBaseUrl": double.openai_url, "anthropicBaseUrl": double.url})


if __name__ == "__main__":
    main()
