"""A wrapped OpenAI stream gives the caller what the unwrapped client gives: the usage-only chunk the SDK asked for
is kept from the caller's loop, an async stream closes, iterates and enters as the provider's ``AsyncStream``, and
a stream left before its usage is recorded as such. Real clients against the local provider double."""

import asyncio
from typing import Any

import anthropic
import openai
import pytest
from local_http import Answer, EventStream, LocalServer
from opsmeter_double import MemoryIngest
from wrapped_clients import claude_clients, openai_clients

from opsmeter import Opsmeter
from opsmeter_runtime.provider_double import REPLY, ProviderDouble

MESSAGES: Any = [{"role": "user", "content": "Summarise the order."}]


class Ingest(MemoryIngest):
    def failed(self, om: Opsmeter, tag: str) -> list[tuple[Any, ...]]:
        return self.columns(om, tag, "status errorCode inputTokens outputTokens metadata.opsmeterUsage")

    def tagged(self, om: Opsmeter, tag: str) -> list[tuple[Any, ...]]:
        return self.columns(om, tag, "status inputTokens outputTokens metadata.opsmeterUsage")


@pytest.fixture
def ingest() -> Ingest:
    return Ingest()


def full(fake: ProviderDouble) -> tuple[str, int, int, None]:
    usage = fake.openai_usage
    return ("success", usage.prompt_tokens, usage.completion_tokens, None)


def test_a_stream_the_caller_did_not_ask_usage_of_has_no_usage_chunk_for_their_loop(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    client, async_client = openai_clients(fake.openai_url, om)
    with om.attribution(endpoint_tag="stream.hidden"):
        # the loop written for an unwrapped stream: every chunk has a choice
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        assert fake.calls_to("openai")[-1].body["stream_options"] == {"include_usage": True}
        options: Any = {"include_obfuscation": False}  # the caller's options without include_usage: the same
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options=options
        )
        assert all(chunk.choices and chunk.usage is None for chunk in stream)

        async def streamed_async() -> str:
            events = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            return "".join([chunk.choices[0].delta.content or "" async for chunk in events])

        async_text = asyncio.run(streamed_async())
    assert text.strip() == async_text.strip() == REPLY
    assert ingest.tagged(om, "stream.hidden") == [full(fake)] * 3


def test_a_stream_the_caller_asked_usage_of_still_ends_with_the_usage_chunk(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    client, async_client = openai_clients(fake.openai_url, om)
    asked: Any = {"include_usage": True}
    with om.attribution(endpoint_tag="stream.asked"):
        chunks = list(
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options=asked)
        )

        async def streamed_async() -> list[Any]:
            events = await async_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options=asked
            )
            return [chunk async for chunk in events]

        async_chunks = asyncio.run(streamed_async())
        # chat.completions.stream() with include_usage: its final completion carries the usage, as unwrapped
        with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES, stream_options=asked) as helper:
            final = helper.get_final_completion()
    for got in (chunks, async_chunks):
        assert got[-1].choices == []
        assert got[-1].usage is not None
        assert got[-1].usage.prompt_tokens == fake.openai_usage.prompt_tokens
    assert final.usage is not None
    assert ingest.tagged(om, "stream.asked") == [full(fake)] * 3


def test_an_async_stream_closes_iterates_and_enters_as_the_providers_async_stream(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    _, async_client = openai_clients(fake.openai_url, om)

    async def use() -> None:
        with om.attribution(endpoint_tag="stream.async"):
            stream = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            first = await stream.__anext__()
            assert first.choices[0].delta.role == "assistant"
            await stream.close()  # the provider's close(): a coroutine, awaited
            assert stream.response.is_closed
            async with await async_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ) as entered:
                assert [chunk.choices[0].index async for chunk in entered]
            assert entered.response.is_closed
            async with await async_client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ) as left:
                await left.__anext__()
            assert left.response.is_closed
            broken = await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            async for _ in broken:
                break
            await asyncio.sleep(0.05)  # the loop's generator is closed by the event loop
            assert len(ingest.tagged(om, "stream.async")) == 4, "a loop left early is recorded at once"
            assert [chunk.choices[0].index async for chunk in broken], "a later loop goes on, as unwrapped"
            await broken.close()

    asyncio.run(use())
    missing = ("success", 0, 0, "missing")
    assert ingest.tagged(om, "stream.async") == [missing, full(fake), missing, missing]


def test_a_sync_stream_steps_with_next_and_a_stream_left_early_is_marked_usage_missing(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    client, _ = openai_clients(fake.openai_url, om)
    with om.attribution(endpoint_tag="stream.left"):
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert next(stream).choices[0].delta.role == "assistant"
        stream.close()
        assert stream.response.is_closed
        with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as entered:
            for _ in entered:
                break
            assert len(ingest.tagged(om, "stream.left")) == 2, "a loop left early is recorded at once"
            assert [chunk.choices[0].index for chunk in entered], "a later loop goes on, as unwrapped"
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        # a raw stream is the caller's to read: not asked for usage, recorded at once without it
        assert "stream_options" not in fake.calls_to("openai")[-1].body
        assert all(chunk.choices for chunk in raw.parse())
    missing = ("success", 0, 0, "missing")
    assert ingest.tagged(om, "stream.left") == [missing] * 3


def test_a_helper_stream_left_early_is_recorded_when_its_block_ends(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    client, async_client = openai_clients(fake.openai_url, om)
    with om.attribution(endpoint_tag="stream.helper.left"):
        # the helper closes the HTTP response itself on leaving the block: the record is taken then, not when the
        # stream is collected
        with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as helper:
            for event in helper:
                if event.type == "content.delta":
                    break
        assert len(ingest.tagged(om, "stream.helper.left")) == 1

        async def left_async() -> None:
            async with async_client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as events:
                async for event in events:
                    if event.type == "content.delta":
                        break

        asyncio.run(left_async())
        with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as helper:
            text = "".join(event.delta for event in helper if event.type == "content.delta")
    assert text.strip() == REPLY
    missing = ("success", 0, 0, "missing")
    assert ingest.tagged(om, "stream.helper.left") == [missing, missing, full(fake)]


class FailingMidStream(LocalServer):
    """A provider whose streams break after their first events, as each provider sends a failure then (HTTP 200
    already sent): Anthropic an ``error`` event after ``message_start`` (which carries the input usage), OpenAI a data
    line holding an error object after a first chunk."""

    MODEL = "claude-sonnet-4-5"

    def __init__(self, fake: ProviderDouble) -> None:
        self.usage = fake.anthropic_usage
        super().__init__()

    def respond(self, method: str, path: str, body: Any) -> Answer:
        if path.endswith("/messages"):
            message = {
                "id": "msg_local",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": self.usage.body(output_tokens=1),
            }
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            return 200, EventStream(
                [("message_start", {"type": "message_start", "message": message}), ("error", error)]
            )
        chunk: dict[str, Any] = {
            "id": "chatcmpl-local",
            "object": "chat.completion.chunk",
            "created": 1767225600,
            "model": body["model"],
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
            "usage": None,
        }
        failure = {"message": "The server had an error", "type": "server_error", "param": None, "code": None}
        return 200, EventStream([(None, chunk), (None, {"error": failure})])


def test_a_stream_that_fails_mid_way_is_the_error_the_provider_sent_with_the_usage_it_reported(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    failing = FailingMidStream(fake)
    try:
        claude, async_claude = claude_clients(failing.url, om)
        client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=f"{failing.url}/v1", max_retries=0))
        unwrapped = anthropic.Anthropic(api_key="sk-ant", base_url=failing.url, max_retries=0)
        claude_call: Any = {"model": FailingMidStream.MODEL, "max_tokens": 512, "messages": MESSAGES, "stream": True}

        def read(stream: Any) -> tuple[list[str], BaseException | None]:
            seen: list[str] = []
            try:
                for event in stream:
                    seen.append(event.type)
            except anthropic.APIError as exc:
                return seen, exc
            return seen, None

        expected, plain_error = read(unwrapped.messages.create(**claude_call))
        with om.attribution(endpoint_tag="stream.failed"):
            events, error = read(claude.messages.create(**claude_call))

            async def read_async() -> BaseException:
                stream = await async_claude.messages.create(**claude_call)
                with pytest.raises(anthropic.APIStatusError) as raised:
                    async for _ in stream:
                        pass
                return raised.value

            async_error = asyncio.run(read_async())
            chunks = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            with pytest.raises(openai.APIError) as openai_error:
                for _ in chunks:
                    pass
    finally:
        failing.close()
    # the caller gets the events and the exception of the unwrapped client
    assert events == expected == ["message_start"]
    assert type(error) is type(async_error) is type(plain_error)
    assert isinstance(error, anthropic.APIStatusError)
    assert error.status_code == 200
    assert openai_error.value.type == "server_error"
    u = failing.usage
    started = (u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens, 1, None)
    assert ingest.failed(om, "stream.failed") == [
        ("error", "overloaded_error", *started),
        ("error", "overloaded_error", *started),
        ("error", "server_error", 0, 0, "missing"),
    ]
