"""Opsmeter's side of the SDK's tests: the ingest API in memory (an httpx transport), and Opsmeter with a chat
completions provider on a local socket."""

import json
import threading
from typing import Any

import httpx
from local_http import Answer, LocalServer, accepted

from opsmeter import Opsmeter


class MemoryIngest:
    """The ingest API in memory, for ``Opsmeter(transport=httpx.MockTransport(ingest))``: every event accepted (207)
    and kept in ``events``; any other path is a 404."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/llm-requests"):
            return httpx.Response(404, json={})
        events = json.loads(request.content)["events"]
        with self._lock:
            self.events.extend(events)
        status, answer = accepted(events)
        return httpx.Response(status, json=answer)

    def columns(self, om: Opsmeter, tag: str, keys: str) -> list[tuple[Any, ...]]:
        """Once ``om`` has sent all it holds: the records of one endpoint tag, each as the tuple of its ``keys``
        (the wire's names, space-separated; ``metadata.<key>`` for one of its metadata; None where it has none)."""
        assert om.flush(timeout=5), om.stats()
        names = keys.split()
        return [tuple(_value(e, key) for key in names) for e in self.events if e.get("endpointTag") == tag]


def _value(record: dict[str, Any], key: str) -> Any:
    if key.startswith("metadata."):
        return (record.get("metadata") or {}).get(key.removeprefix("metadata."))
    return record.get(key)


class Opsmeterd(LocalServer):
    """Opsmeter, and a provider's chat completions, on one local socket.

    ``GET /v1/runtime/policy`` answers ``policy`` (a 503 while it is None: Opsmeter is down) and is counted in
    ``policy_gets``; ``POST /v1/ingest/llm-requests`` keeps the events in ``events`` and answers every one accepted
    (with the ``modelNormalized`` that ``model_normalized`` gives its model, if any), with ``ingest_flags`` added;
    ``POST .../chat/completions`` answers :func:`completion` ("ok", as the model ``answered_as`` gives the one asked
    for, else as that one) and keeps the model asked for in ``provider_models``; anything else is a 404."""

    def __init__(self, policy: dict[str, Any] | None = None) -> None:
        self.policy = policy
        self.ingest_flags: dict[str, Any] = {}
        self.model_normalized: dict[str, str] = {}
        self.answered_as: dict[str, str] = {}
        self.policy_gets = 0
        self.provider_models: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()

    def respond(self, method: str, path: str, body: Any) -> Answer:
        with self._lock:
            if method == "GET" and path.endswith("/v1/runtime/policy"):
                self.policy_gets += 1
                return (200, self.policy) if self.policy is not None else (503, {})
            if path.endswith("/chat/completions"):
                self.provider_models.append(body["model"])
                return 200, completion(self.answered_as.get(body["model"], body["model"]))
            if path.endswith("/v1/ingest/llm-requests"):
                self.events.extend(body["events"])
                status, answer = accepted(body["events"], self.model_normalized)
                return status, {**answer, **self.ingest_flags}
            return 404, None


def completion(model: str) -> dict[str, Any]:
    """An OpenAI chat completion answering "ok", with 10 prompt and 2 completion tokens."""
    message = {"role": "assistant", "content": "ok", "refusal": None}
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
