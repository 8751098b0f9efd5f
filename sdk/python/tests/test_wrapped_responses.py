"""OpenAI's Responses API through a wrapped client: create(), parse(), create(stream=True) and the stream() helper
are each recorded once with the usage the provider sent, and the caller gets what the unwrapped client gets. Real
clients against a local provider answering with the Responses API's JSON and event shapes."""

import asyncio
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
from local_http import Answer, EventStream, LocalServer
from opsmeter_double import MemoryIngest
from pydantic import BaseModel
from wrapped_clients import openai_clients

from opsmeter import Opsmeter
from opsmeter.background import HELD_AT_MOST, BackgroundCalls

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
        self.background: dict[str, tuple[str, list[str]]] = {}
        """A background response's id -> its model and the statuses its next retrieves answer (the last repeats)."""
        super().__init__()
        self.url += "/v1"  # an OpenAI client's base URL

    def respond(self, method: str, path: str, body: Any) -> Answer:
        if (asked := re.search(r"/responses/([^/?]+)(/cancel)?$", urlsplit(path).path)) is not None:
            return self.background_answer(asked[1], cancel=asked[2] is not None)
        if not path.endswith("/responses"):
            return 404, {"error": {"message": "not found", "type": "invalid_request_error"}}
        self.bodies.append(body)
        if body.get("background") and not body.get("stream"):  # answered at once, queued: retrieved later
            ending, self.next = self.next or "completed", None
            response_id = f"resp_bg_{len(self.bodies)}"
            self.background[response_id] = (body["model"], ["in_progress", ending])
            return 200, {**response(body["model"], "queued"), "id": response_id, "background": True}
        ending, self.next = self.next or "completed", None
        if body.get("stream"):
            return 200, events(body["model"], ending)
        schema = ((body.get("text") or {}).get("format") or {}).get("type") == "json_schema"
        return 200, response(body["model"], ending, STRUCTURED if schema else REPLY)

    def background_answer(self, response_id: str, *, cancel: bool) -> Answer:
        """``GET /responses/{id}`` (its next status) or ``POST /responses/{id}/cancel`` of a background response."""
        if response_id not in self.background:
            return 404, {"error": {"message": "no such response", "type": "invalid_request_error"}}
        model, statuses = self.background[response_id]
        if cancel:
            statuses[:] = ["cancelled"]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return 200, {**response(model, status), "id": response_id, "background": True}


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
    error and no usage, "queued", "in_progress" and "cancelled" with neither."""
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


def test_a_background_call_is_recorded_once_when_the_client_sees_it_end(
    fake: ResponsesProvider, om: Opsmeter, ingest: Ingest
) -> None:
    """A background call answers at once, queued and without usage: it is recorded when a retrieve (sync or async)
    answers it ended, with the usage it ended with; not before, and not again."""
    client, async_client = openai_clients(fake.url, om)
    with om.attribution(endpoint_tag="responses.background"):
        queued = client.responses.create(model="gpt-4.1-mini", input="Research this", background=True)
    assert (queued.status, queued.usage) == ("queued", None)
    assert client.responses.retrieve(queued.id).status == "in_progress"
    assert ingest.tagged(om, "responses.background") == []
    assert client.responses.retrieve(queued.id).status == "completed"
    assert ingest.tagged(om, "responses.background") == [RECORDED]

    async def create_and_poll_async() -> list[str]:
        with om.attribution(endpoint_tag="responses.background"):
            later = await async_client.responses.create(model="gpt-4.1-mini", input="And this", background=True)
        return [str((await async_client.responses.retrieve(later.id)).status) for _ in range(3)]

    assert asyncio.run(create_and_poll_async()) == ["in_progress", "completed", "completed"]
    assert client.responses.retrieve(queued.id).status == "completed"
    assert ingest.tagged(om, "responses.background") == [RECORDED] * 2


def test_a_background_call_that_failed_or_was_cancelled_is_an_error_and_an_unseen_one_is_kept_at_shutdown(
    fake: ResponsesProvider, ingest: Ingest
) -> None:
    om = Opsmeter("om_live_x_y", base_url="http://ingest.test", transport=httpx.MockTransport(ingest))
    client, _ = openai_clients(fake.url, om)
    with om.attribution(endpoint_tag="responses.background.ends"):
        fake.next = "failed"
        failed = client.responses.create(model="gpt-4.1-mini", input="Hi", background=True)
        cancelled = client.responses.create(model="gpt-4.1-mini", input="Hi", background=True)
        unseen = client.responses.create(model="gpt-4.1-mini", input="Hi", background=True)
    assert client.responses.retrieve(failed.id).status == "in_progress"
    assert client.responses.retrieve(failed.id).status == "failed"
    assert client.responses.cancel(cancelled.id).status == "cancelled"
    assert client.responses.retrieve(unseen.id).status == "in_progress"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_not_made_here")
    keys = "status errorCode inputTokens metadata.opsmeterUsage metadata.opsmeterBackground"
    assert ingest.columns(om, "responses.background.ends", keys) == [
        ("error", "server_error", 0, "missing", None),
        ("error", "cancelled", 0, "missing", None),
    ]
    om.shutdown(timeout=5)
    assert [e["status"] for e in ingest.events if e.get("endpointTag") == "responses.background.ends"] == [
        "error",
        "error",
        "success",
    ]
    [kept] = [e for e in ingest.events if e.get("endpointTag") == "responses.background.ends"][2:]
    assert kept["metadata"] == {"opsmeterUsage": "missing", "opsmeterBackground": "unfinished"}


def test_the_background_registry_never_drops_a_call_silently() -> None:
    """Past its bound the oldest held call is recorded unfinished at once, as is one held again under its id."""
    held = BackgroundCalls()
    finished: list[tuple[int, Any]] = []

    def finish(n: int) -> Callable[[Any], None]:
        return lambda ended: finished.append((n, ended))

    for n in range(HELD_AT_MOST + 2):
        held.hold(f"resp_{n}", finish(n))
    held.hold("resp_5", finish(-5))
    assert finished == [(0, None), (1, None), (5, None)]
    ended = SimpleNamespace(id="resp_7", status="completed")
    held.seen(SimpleNamespace(id="resp_6", status="in_progress"))
    held.seen(ended)
    held.seen(ended)
    assert finished[3:] == [(7, ended)]
    held.finish_all()
    assert len(finished) == 4 + HELD_AT_MOST - 1
    assert len(held) == 0
