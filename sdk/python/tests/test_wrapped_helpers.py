"""The openai client's helpers around create(): stream() and parse() are recorded with their usage, and a client
made by ``with_options(...)`` is recorded too. Real clients against the local provider double."""

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from opsmeter import Opsmeter
from opsmeter_runtime.provider_double import ProviderDouble

MESSAGES: Any = [{"role": "user", "content": "Summarise the order."}]


class Ingest:
    """The ingest API in memory: every event accepted."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/llm-requests"):
            return httpx.Response(404, json={})
        events = json.loads(request.content)["events"]
        with self._lock:
            self.events.extend(events)
        return httpx.Response(207, json={"results": [{"httpStatus": 202} for _ in events]})

    def tagged(self, om: Opsmeter, tag: str) -> list[tuple[Any, ...]]:
        assert om.flush(timeout=5), om.stats()
        return [
            (e["provider"], e.get("status"), e["inputTokens"], e["outputTokens"])
            for e in self.events
            if e.get("endpointTag") == tag
        ]


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderDouble]:
    with ProviderDouble() as double:
        yield double


@pytest.fixture
def ingest() -> Ingest:
    return Ingest()


@pytest.fixture
def om(ingest: Ingest) -> Iterator[Opsmeter]:
    client = Opsmeter("om_live_x_y", base_url="http://ingest.test", transport=httpx.MockTransport(ingest))
    yield client
    client.shutdown(timeout=1)


def openai_usage(fake: ProviderDouble, om: Opsmeter) -> tuple[int, int]:
    client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.usage is not None
    return reply.usage.prompt_tokens, reply.usage.completion_tokens


def test_chat_completions_stream_is_recorded_with_its_usage(fake: ProviderDouble, om: Opsmeter, ingest: Ingest) -> None:
    usage = openai_usage(fake, om)
    client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
    # the helpers take only the provider's arguments: attribution comes from the context
    with (
        om.attribution(endpoint_tag="helper.stream"),
        client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream,
    ):
        for _ in stream:
            pass
        final = stream.get_final_completion()
    # the usage chunk the SDK asked for is read by the SDK alone: the completion is the unwrapped client's
    assert final.usage is None
    assert final.choices[0].message.content

    async def streamed_async() -> None:
        async_client = om.wrap_openai(openai.AsyncOpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
        with om.attribution(endpoint_tag="helper.stream"):
            async with async_client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as events:
                async for _ in events:
                    pass

    asyncio.run(streamed_async())
    # a stream_options dict of the caller's own keeps its keys and gets include_usage
    with om.attribution(endpoint_tag="helper.stream"):
        streamed = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_obfuscation": False}
        )
        for _ in streamed:
            pass
    assert fake.calls_to("openai")[-1].body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert ingest.tagged(om, "helper.stream") == [("openai", "success", *usage)] * 3


def test_parse_is_recorded_once_with_its_usage(fake: ProviderDouble, om: Opsmeter, ingest: Ingest) -> None:
    usage = openai_usage(fake, om)
    client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
    with om.attribution(endpoint_tag="helper.parse"):
        parsed = client.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES)
    assert parsed.usage is not None
    assert ingest.tagged(om, "helper.parse") == [("openai", "success", *usage)]


def test_a_client_made_by_with_options_is_recorded_too(fake: ProviderDouble, om: Opsmeter, ingest: Ingest) -> None:
    usage = openai_usage(fake, om)
    client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
    claude = om.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant", base_url=fake.url, max_retries=0))
    with om.attribution(endpoint_tag="helper.copy"):
        client.with_options(timeout=5).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.copy(max_retries=1).with_options(timeout=5).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
        claude.with_options(timeout=5).messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
    sent = ingest.tagged(om, "helper.copy")
    assert sent[:2] == [("openai", "success", *usage)] * 2
    assert [row[:2] for row in sent[2:]] == [("anthropic", "success")]


def test_a_with_raw_response_call_is_recorded_with_its_usage(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    usage = openai_usage(fake, om)
    client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
    claude = om.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant", base_url=fake.url, max_retries=0))
    with om.attribution(endpoint_tag="helper.raw"):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        reply = raw.parse()
        raw_message = claude.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES
        )
        message = raw_message.parse()

        async def raw_async() -> Any:
            async_claude = om.wrap_anthropic(anthropic.AsyncAnthropic(api_key="sk-ant", base_url=fake.url))
            answer = await async_claude.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES
            )
            return await answer.parse()

        async_message = asyncio.run(raw_async())
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == usage
    sent = ingest.tagged(om, "helper.raw")
    assert sent[0] == ("openai", "success", *usage)
    assert [row[3] for row in sent[1:]] == [message.usage.output_tokens, async_message.usage.output_tokens]
    assert all(row[2] > 0 for row in sent)
