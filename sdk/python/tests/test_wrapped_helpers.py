"""The clients' helpers: openai's stream() and parse() around create(), and anthropic's messages.stream(), which
posts by itself, are recorded once with their usage; so are the ``beta`` resources and a client made by
``with_options(...)``. Real clients against the local provider double."""

import asyncio
from typing import Any

import anthropic
import openai
import pytest
from local_http import EventStream, LocalServer
from opsmeter_double import MemoryIngest, Opsmeterd
from wrapped_clients import claude_clients

from opsmeter import BudgetExceededError, Opsmeter
from opsmeter_runtime.provider_double import REPLY, ProviderDouble

MESSAGES: Any = [{"role": "user", "content": "Summarise the order."}]
CLAUDE: Any = {"model": "claude-sonnet-4-5", "max_tokens": 512, "messages": MESSAGES}


class Ingest(MemoryIngest):
    def tagged(self, om: Opsmeter, tag: str) -> list[tuple[Any, ...]]:
        return self.columns(om, tag, "provider status inputTokens outputTokens")

    def messages(self, om: Opsmeter, tag: str) -> list[tuple[Any, ...]]:
        return self.columns(
            om,
            tag,
            "status errorCode model inputTokens outputTokens cachedInputTokens cacheWriteInputTokens"
            " metadata.opsmeterUsage",
        )


@pytest.fixture
def ingest() -> Ingest:
    return Ingest()


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


def whole_message(fake: ProviderDouble) -> tuple[Any, ...]:
    """What a message the double streamed to its end is recorded as (cache reads and writes inside input)."""
    a = fake.anthropic_usage
    whole = a.input_tokens + a.cache_read_input_tokens + a.cache_creation_input_tokens
    return (
        "success",
        None,
        CLAUDE["model"],
        whole,
        a.output_tokens,
        a.cache_read_input_tokens,
        a.cache_creation_input_tokens,
        None,
    )


def test_anthropic_messages_stream_is_recorded_once_with_its_usage_however_it_is_read(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    claude, async_claude = claude_clients(fake.url, om)
    unwrapped = anthropic.Anthropic(api_key="sk-ant", base_url=fake.url, max_retries=0)
    with unwrapped.messages.stream(**CLAUDE) as plain:
        expected = [event.type for event in plain]
    with om.attribution(endpoint_tag="helper.messages"):
        with claude.messages.stream(**CLAUDE) as stream:
            events = [event.type for event in stream]
        with claude.messages.stream(**CLAUDE) as stream:
            text = "".join(stream.text_stream)
        with claude.messages.stream(**{**CLAUDE, "opsmeter_user_id": "user-7"}) as stream:  # taken off, as create's
            final = stream.get_final_message()

        async def streamed_async() -> str:
            async with async_claude.messages.stream(**CLAUDE) as events:
                return await events.get_final_text()

        async_text = asyncio.run(streamed_async())
    # the caller gets the provider's own MessageStream, with the events and text of the unwrapped client
    assert type(stream) is type(plain)
    assert events == expected
    assert text.strip() == async_text.strip() == REPLY
    assert final.usage.output_tokens == fake.anthropic_usage.output_tokens
    assert ingest.messages(om, "helper.messages") == [whole_message(fake)] * 4
    assert [e.get("userId") for e in ingest.events] == [None, None, "user-7", None]


def anthropic_message(model: str) -> dict[str, Any]:
    """A message as ``message_start`` opens it: no content, no stop reason yet."""
    return {
        "id": "msg_local",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def test_an_anthropic_messages_stream_left_early_or_failed_is_recorded_once(
    fake: ProviderDouble, om: Opsmeter, ingest: Ingest
) -> None:
    claude, _ = claude_clients(fake.url, om)
    a = fake.anthropic_usage
    started = a.input_tokens + a.cache_read_input_tokens + a.cache_creation_input_tokens
    model = CLAUDE["model"]
    with om.attribution(endpoint_tag="helper.messages.left"):
        with claude.messages.stream(**CLAUDE):
            pass  # left before reading any event
        with claude.messages.stream(**CLAUDE) as stream:
            for event in stream:
                if event.type == "message_start":
                    break
        fake.fail_next(529)
        with pytest.raises(anthropic.APIStatusError), claude.messages.stream(**CLAUDE):
            pass
    # a stream that fails after message_start, as Anthropic sends it: an error event
    start = {"type": "message_start", "message": {**anthropic_message(model), "usage": a.body(output_tokens=1)}}
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    failing = LocalServer(lambda *_: (200, EventStream([("message_start", start), ("error", error)])))
    try:
        broken, _ = claude_clients(failing.url, om)
        with (
            om.attribution(endpoint_tag="helper.messages.left"),
            pytest.raises(anthropic.APIStatusError) as raised,
            broken.messages.stream(**CLAUDE) as stream,
        ):
            stream.until_done()
    finally:
        failing.close()
    cache = (a.cache_read_input_tokens, a.cache_creation_input_tokens)
    assert ingest.messages(om, "helper.messages.left") == [
        ("success", None, model, 0, 0, None, None, "missing"),
        ("success", None, model, started, 1, *cache, None),
        ("error", "http_529", model, 0, 0, None, None, None),
        # the error event's own type: the client raises it carrying the stream's 200
        ("error", "overloaded_error", model, started, 1, *cache, None),
    ]
    assert raised.value.status_code == 200


def test_anthropic_messages_stream_gets_the_runtime_action(fake: ProviderDouble) -> None:
    clamp = {"onBudgetExceeded": "clamp", "clampMaxTokens": 64}
    policy: dict[str, Any] = {"policyMode": "enforce", "budgetExceeded": True, "runtimeActions": clamp}
    opsmeter = Opsmeterd(policy)
    om = Opsmeter("om_live_x_y", base_url=opsmeter.url, enforcement=True)
    try:
        claude, async_claude = claude_clients(fake.url, om)
        with claude.messages.stream(**CLAUDE) as stream:
            stream.until_done()
        assert fake.calls_to("anthropic")[-1].body["max_tokens"] == 64
        policy["runtimeActions"] = {"onBudgetExceeded": "block"}
        om.policy.refresh()
        calls = len(fake.calls)
        with pytest.raises(BudgetExceededError), claude.messages.stream(**CLAUDE):
            pass

        async def blocked_async() -> None:
            async with async_claude.messages.stream(**CLAUDE):
                pass

        with pytest.raises(BudgetExceededError):
            asyncio.run(blocked_async())
        assert len(fake.calls) == calls, "a blocked call never reaches the provider"
        assert om.flush(timeout=5)
        assert [(e["status"], e.get("errorCode"), e["metadata"]["opsmeterAction"]) for e in opsmeter.events] == [
            ("success", None, "clamp"),
            ("error", "budget_blocked", "block"),
            ("error", "budget_blocked", "block"),
        ]
    finally:
        om.shutdown(timeout=1)
        opsmeter.close()


def test_the_beta_resources_are_recorded_too(fake: ProviderDouble, om: Opsmeter, ingest: Ingest) -> None:
    usage = openai_usage(fake, om)
    client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
    claude, _ = claude_clients(fake.url, om)
    with om.attribution(endpoint_tag="helper.beta"):
        client.beta.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        with client.beta.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as chunks:
            chunks.until_done()
        message = claude.beta.messages.create(**CLAUDE)
        with claude.beta.messages.stream(**CLAUDE) as events:
            streamed = events.get_final_message()
    assert [block.text for block in message.content if block.type == "text"] == [REPLY]
    assert streamed.usage.output_tokens == message.usage.output_tokens
    sent = ingest.tagged(om, "helper.beta")
    assert sent[:2] == [("openai", "success", *usage)] * 2
    a = fake.anthropic_usage
    whole = a.input_tokens + a.cache_read_input_tokens + a.cache_creation_input_tokens
    assert sent[2:] == [("anthropic", "success", whole, a.output_tokens)] * 2


TOP_LEVEL: dict[str, Any] = {
    "input_tokens": 23_000,
    "output_tokens": 1_000,
    "cache_read_input_tokens": 0,
    "cache_creation_input_tokens": 0,
}
COMPACTED: dict[str, Any] = {
    **TOP_LEVEL,
    "iterations": [
        {
            "type": "compaction",
            "input_tokens": 180_000,
            "output_tokens": 3_500,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
        {"type": "message", **TOP_LEVEL},  # already in the top-level fields
    ],
}


def compacting_server(usage: dict[str, Any]) -> LocalServer:
    """Anthropic answering every messages call with ``usage``: a message, or as a stream its events (the final usage,
    iterations included, in ``message_delta``)."""
    model = CLAUDE["model"]

    def respond(method: str, path: str, body: Any) -> Any:
        text = {"type": "text", "text": REPLY}
        if not body.get("stream"):
            return 200, {**anthropic_message(model), "content": [text], "stop_reason": "end_turn", "usage": usage}
        start_usage = {key: value for key, value in usage.items() if key != "iterations"}
        return 200, EventStream(
            [
                (
                    "message_start",
                    {"type": "message_start", "message": {**anthropic_message(model), "usage": start_usage}},
                ),
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {**text, "text": ""}},
                ),
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": REPLY}},
                ),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                (
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                        "usage": usage,
                    },
                ),
                ("message_stop", {"type": "message_stop"}),
            ]
        )

    return LocalServer(respond)


@pytest.mark.parametrize(
    ("usage", "recorded"),
    [(COMPACTED, (203_000, 4_500)), (TOP_LEVEL, (23_000, 1_000))],
    ids=["compacted", "without-iterations"],
)
def test_a_compaction_iterations_tokens_are_added_to_the_beta_messages_record(
    om: Opsmeter, ingest: Ingest, usage: dict[str, Any], recorded: tuple[int, int]
) -> None:
    """Server-side compaction bills its summary step on the requested model but leaves its tokens out of the
    top-level usage: a ``compaction`` iteration is added in; a ``message`` one (already in the top level) is not."""
    server = compacting_server(usage)
    try:
        claude, async_claude = claude_clients(server.url, om)
        beta: Any = {**CLAUDE, "betas": ["compact-2026-01-12"]}
        with om.attribution(endpoint_tag="helper.compaction"):
            claude.beta.messages.create(**beta)
            for _ in claude.beta.messages.create(**beta, stream=True):
                pass
            with claude.beta.messages.stream(**beta) as stream:
                stream.until_done()

            async def streamed_async() -> None:
                async for _ in await async_claude.beta.messages.create(**beta, stream=True):
                    pass

            asyncio.run(streamed_async())
    finally:
        server.close()
    assert ingest.tagged(om, "helper.compaction") == [("anthropic", "success", *recorded)] * 4
