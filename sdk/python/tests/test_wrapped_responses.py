"""OpenAI's Responses API through a wrapped client: create(), parse(), create(stream=True) and the stream() helper
are each recorded once with the usage the provider sent, and the caller gets what the unwrapped client gets. Real
clients against a local provider answering with the Responses API's JSON and event shapes."""

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from local_http import Answer, EventStream, LocalServer
from opsmeter_double import MemoryIngest
from pydantic import BaseModel
from wrapped_clients import openai_clients

from opsmeter import Opsmeter

REPLY = "The order ships on Monday."
STRUCTURED = '{"day": "Monday"}'
"""The reply to a call that asks for a JSON schema (``parse(text_format=...)``)."""
USAGE = {
    "input_tokens": 900,
    "input_tokens_details": {"cached_tokens": 512},
    "output_tokens": 250,
    "output_tokens_details": {"reasoning_tokens": 64},
    "total_tokens": 1150,
}
RECORDED = ("openai", "success", "gpt-4.1-mini", 900, 250, 512, 64, None)
"""What a call that got USAGE is recorded as: Responses' input includes the cached tokens, output the reasoning."""


class ResponsesProvider(LocalServer):
    """``POST /v1/responses``: a ``response`` object, or with ``stream: true`` its event stream, ending in
    ``response.completed`` with the usage. ``next`` = "failed" / "incomplete" makes the next response (or stream) end
    that way; "error" makes the next stream send an ``error`` event after its first events."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.next: str | None = None
        super().__init__()
        self.url += "/v1"  # an OpenAI client's base URL

    def respond(self, method: str, path: str, body: Any) -> Answer:
        if not path.endswith("/responses"):
            return 404, {"error": {"message": "not found", "type": "invalid_request_error"}}
        self.bodies.append(body)
        ending, self.next = self.next or "completed", None
        if body.get("stream"):
            return 200, events(body["model"], ending)
        schema = ((body.get("text") or {}).get("format") or {}).get("type") == "json_schema"
        return 200, response(body["model"], ending, STRUCTURED if schema else REPLY)


@pytest.fixture(scope="module")
def fake() -> Iterator[ResponsesProvider]:
    with ResponsesProvider() as provider:
        yield provider


def message(status: str, text: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text else []
    return {"id": "msg_local", "type": "message", "status": status, "role": "assistant", "content": content}


FAILURE = {"code": "server_error", "message": "The model failed to generate a response."}


def response(model: str, status: str, text: str = REPLY) -> dict[str, Any]:
    """A response as OpenAI sends it: "completed" and "incomplete" with their output and usage, "failed" with its
    error and no usage, "in_progress" with neither."""
    done = status in ("completed", "incomplete")
    return {
        "id": "resp_local",
        "object": "response",
        "created_at": 1767225600,
        "status": status,
        "error": FAILURE if status == "failed" else None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [message(status, text)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": USAGE if done else None,
        "user": None,
        "metadata": {},
    }


def events(model: str, ending: str = "completed") -> EventStream:
    """The stream of a response that ends ``response.<ending>``; with ending "error", one cut by an ``error`` event
    after its first three events (the client passes it on rather than raising)."""
    part = {"item_id": "msg_local", "output_index": 0, "content_index": 0}
    sent: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": response(model, "in_progress")}),
        ("response.in_progress", {"response": response(model, "in_progress")}),
        ("response.output_item.added", {"output_index": 0, "item": message("in_progress", "")}),
        ("response.content_part.added", {**part, "part": {"type": "output_text", "text": "", "annotations": []}}),
        *[("response.output_text.delta", {**part, "delta": word, "logprobs": []}) for word in REPLY.split(" ")],
    ]
    if ending == "error":
        sent[3:] = [("error", {"code": "server_error", "message": "The server had an error", "param": None})]
    elif ending != "failed":
        sent += [
            ("response.output_text.done", {**part, "text": REPLY, "logprobs": []}),
            ("response.content_part.done", {**part, "part": {"type": "output_text", "text": REPLY, "annotations": []}}),
            ("response.output_item.done", {"output_index": 0, "item": message(ending, REPLY)}),
        ]
    if ending != "error":
        sent.append((f"response.{ending}", {"response": response(model, ending)}))
    return EventStream([(name, {"type": name, "sequence_number": n, **data}) for n, (name, data) in enumerate(sent)])


class Ingest(MemoryIngest):
    def tagged(self, om: Opsmeter, tag: str) -> list[tuple[Any, ...]]:
        return self.columns(
            om,
            tag,
            "provider status model inputTokens outputTokens cachedInputTokens reasoningTokens metadata.opsmeterUsage",
        )


@pytest.fixture
def ingest() -> Ingest:
    return Ingest()


class Shipping(BaseModel):
    day: str


def test_responses_create_and_parse_are_recorded_with_their_usage(
    fake: ResponsesProvider, om: Opsmeter, ingest: Ingest
) -> None:
    client, async_client = openai_clients(fake.url, om)
    with om.attribution(endpoint_tag="responses.create"):
        created = client.responses.create(model="gpt-4.1-mini", input="When does the order ship?")
        parsed = client.responses.parse(model="gpt-4.1-mini", input="When does it ship?", text_format=Shipping)

        async def created_async() -> str:
            answer = await async_client.responses.create(model="gpt-4.1-mini", input="When does the order ship?")
            return answer.output_text

        async_text = asyncio.run(created_async())
    assert created.output_text == async_text == REPLY
    assert parsed.output_parsed == Shipping(day="Monday")
    assert ingest.tagged(om, "responses.create") == [RECORDED] * 3


def test_a_responses_stream_is_recorded_once_and_the_caller_gets_every_event(
    fake: ResponsesProvider, om: Opsmeter, ingest: Ingest
) -> None:
    client, async_client = openai_clients(fake.url, om)
    unwrapped = openai.OpenAI(api_key="sk-test", base_url=fake.url, max_retries=0)
    expected = [event.type for event in unwrapped.responses.create(model="gpt-4.1-mini", input="Hi", stream=True)]
    with om.attribution(endpoint_tag="responses.stream"):
        streamed = [event.type for event in client.responses.create(model="gpt-4.1-mini", input="Hi", stream=True)]
        with client.responses.stream(model="gpt-4.1-mini", input="Hi") as helper:
            text = "".join(event.delta for event in helper if event.type == "response.output_text.delta")
            final = helper.get_final_response()

        async def streamed_async() -> str:
            async with async_client.responses.stream(model="gpt-4.1-mini", input="Hi") as events:
                return (await events.get_final_response()).output_text

        async_text = asyncio.run(streamed_async())
    assert streamed == expected
    assert text == "".join(REPLY.split(" "))
    assert final.output_text == async_text == REPLY
    assert final.usage is not None
    assert final.usage.output_tokens == USAGE["output_tokens"]
    assert "stream_options" not in fake.bodies[-1], "a Responses stream reports its usage unasked"
    assert ingest.tagged(om, "responses.stream") == [RECORDED] * 3


def test_a_responses_stream_left_before_its_usage_is_marked_usage_missing(
    fake: ResponsesProvider, om: Opsmeter, ingest: Ingest
) -> None:
    client, _ = openai_clients(fake.url, om)
    with om.attribution(endpoint_tag="responses.left"):
        with client.responses.create(model="gpt-4.1-mini", input="Hi", stream=True) as stream:
            assert next(stream).type == "response.created"
        with client.responses.stream(model="gpt-4.1-mini", input="Hi") as helper:
            for event in helper:
                if event.type == "response.output_text.delta":
                    break
    missing = ("openai", "success", "gpt-4.1-mini", 0, 0, None, None, "missing")
    assert ingest.tagged(om, "responses.left") == [missing] * 2


def test_a_responses_call_that_failed_is_an_error_and_an_incomplete_one_counts_and_says_why(
    fake: ResponsesProvider, om: Opsmeter, ingest: Ingest
) -> None:
    client, async_client = openai_clients(fake.url, om)
    unwrapped = openai.OpenAI(api_key="sk-test", base_url=fake.url, max_retries=0)
    fake.next = "failed"
    expected = [event.type for event in unwrapped.responses.create(model="gpt-4.1-mini", input="Hi", stream=True)]
    with om.attribution(endpoint_tag="responses.ended"):
        fake.next = "failed"
        streamed = [event.type for event in client.responses.create(model="gpt-4.1-mini", input="Hi", stream=True)]
        fake.next = "failed"
        failed = client.responses.create(model="gpt-4.1-mini", input="Hi")
        fake.next = "incomplete"
        with client.responses.stream(model="gpt-4.1-mini", input="Hi") as helper:
            cut = [event.type for event in helper]
        fake.next = "incomplete"
        incomplete = asyncio.run(async_client.responses.create(model="gpt-4.1-mini", input="Hi"))
        fake.next = "error"
        errored = [event.type for event in client.responses.create(model="gpt-4.1-mini", input="Hi", stream=True)]
    assert streamed == expected
    assert expected[-1] == "response.failed"
    assert failed.status == "failed"
    assert cut[-1] == "response.incomplete"
    assert incomplete.status == "incomplete"
    assert errored[-1] == "error"
    assert om.flush(timeout=5)
    sent = ingest.columns(
        om,
        "responses.ended",
        "status errorCode inputTokens outputTokens metadata.opsmeterUsage metadata.opsmeterIncomplete",
    )
    error = ("error", "server_error", 0, 0, "missing", None)
    counted = ("success", None, 900, 250, None, "max_output_tokens")  # an incomplete response's usage is billed
    assert sent == [error, error, counted, counted, error]
