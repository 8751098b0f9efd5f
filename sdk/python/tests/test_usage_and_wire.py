"""Pure parts of the SDK: provider usage → SPEC §5 tokens, and the wire record (a wrapped client included)."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import anthropic
import pytest
from local_http import LocalServer
from opsmeter_double import MemoryIngest

from opsmeter import Opsmeter, anthropic_tokens, openai_tokens
from opsmeter._wire import event
from opsmeter.usage import AnthropicStreamUsage
from opsmeter.wrappers import with_sdk_tags

ANTHROPIC_MESSAGE = {  # the shape of a real Messages API answer: input_tokens exclude cache reads and writes
    "id": "msg_01x",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "The quick brown fox jumps over the lazy dog."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 150,
        "cache_creation_input_tokens": 500,
        "cache_read_input_tokens": 2000,
        "cache_creation": {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 400,
        "service_tier": "standard",
    },
}


@pytest.fixture
def provider() -> Iterator[LocalServer]:
    """A local server answering ``POST /v1/messages`` with :data:`ANTHROPIC_MESSAGE` (the real client talks to it)."""
    with LocalServer(lambda method, path, body: (200, ANTHROPIC_MESSAGE)) as fake:
        yield fake


class TestTokens:
    def test_openai_counts_cached_inside_input_already(self) -> None:
        usage = {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 128},
        }
        tokens = openai_tokens(usage)
        assert tokens is not None
        assert (tokens.input_tokens, tokens.cached_input_tokens, tokens.reasoning_tokens) == (1200, 1024, 128)

    def test_anthropic_cache_reads_and_writes_are_added_into_input(self) -> None:
        tokens = anthropic_tokens(
            {
                "input_tokens": 150,
                "cache_read_input_tokens": 2000,
                "cache_creation_input_tokens": 500,
                "output_tokens": 9,
            }
        )
        assert tokens is not None
        assert (tokens.input_tokens, tokens.cached_input_tokens, tokens.cache_write_input_tokens) == (2650, 2000, 500)

    def test_anthropic_1h_cache_writes_are_taken_from_cache_creation(self) -> None:
        """The audit's example: 1,000 input and 100,000 cache-write tokens, all with a 1-hour TTL."""
        message = anthropic.types.Message.model_validate(
            {
                **ANTHROPIC_MESSAGE,
                "usage": {
                    "input_tokens": 1000,
                    "cache_creation_input_tokens": 100_000,
                    "cache_read_input_tokens": 0,
                    "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 100_000},
                    "output_tokens": 500,
                },
            }
        )
        tokens = anthropic_tokens(message.usage)  # the SDK's own typed usage object
        assert tokens is not None
        assert (tokens.input_tokens, tokens.cache_write_input_tokens, tokens.cache_write_1h_input_tokens) == (
            101_000,
            100_000,
            100_000,
        )

    @pytest.mark.parametrize(
        "usage",
        [
            {"input_tokens": 1, "cache_creation_input_tokens": 500, "output_tokens": 1},  # no breakdown (older API)
            ANTHROPIC_MESSAGE["usage"],  # 5-minute writes only
        ],
    )
    def test_no_1h_cache_writes_leave_the_field_unset(self, usage: dict[str, Any]) -> None:
        tokens = anthropic_tokens(usage)
        assert tokens is not None
        assert tokens.cache_write_1h_input_tokens is None

    def test_1h_cache_writes_never_exceed_the_cache_writes(self) -> None:
        tokens = anthropic_tokens(
            {"input_tokens": 1, "cache_creation_input_tokens": 5, "cache_creation": {"ephemeral_1h_input_tokens": 9}}
        )
        assert tokens is not None
        assert tokens.cache_write_1h_input_tokens == 5

    def test_an_anthropic_stream_keeps_the_1h_cache_writes_of_its_start(self) -> None:
        seen = AnthropicStreamUsage()
        usage = {
            "input_tokens": 10,
            "cache_creation_input_tokens": 300,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
            "output_tokens": 1,
        }
        seen.observe({"type": "message_start", "message": {"model": "m", "usage": usage}})
        seen.observe({"type": "message_delta", "usage": {"output_tokens": 42, "cache_creation_input_tokens": 300}})
        tokens = seen.tokens()
        assert tokens is not None
        assert (tokens.input_tokens, tokens.cache_write_input_tokens, tokens.cache_write_1h_input_tokens) == (
            310,
            300,
            200,
        )

    def test_an_anthropic_stream_takes_input_from_the_start_and_output_from_the_last_delta(self) -> None:
        seen = AnthropicStreamUsage()
        seen.observe(
            {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 10, "output_tokens": 1}}}
        )
        seen.observe({"type": "message_delta", "usage": {"output_tokens": 42}})
        tokens = seen.tokens()
        assert tokens is not None
        assert (tokens.input_tokens, tokens.output_tokens, seen.model) == (10, 42, "m")


class TestWire:
    def test_fields_are_camel_case_with_an_id_a_timestamp_and_the_cache_write_field(self) -> None:
        values = {
            "provider": "openai",
            "model": "x",
            "input_tokens": 1,
            "output_tokens": 2,
            "cache_write_input_tokens": 5,
        }
        body = event(values, send_cache_write_tokens=True)
        assert (body["inputTokens"], body["cacheWriteInputTokens"]) == (1, 5)
        assert body["externalRequestId"].startswith("om_")
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
        assert "cacheWriteInputTokens" not in event(values, send_cache_write_tokens=False)  # the opt-out

    def test_a_wrapped_anthropic_call_sends_its_cache_writes_by_default(
        self, provider: LocalServer, om: Opsmeter, ingest: MemoryIngest
    ) -> None:
        """The Anthropic wrapper's ``cache_creation_input_tokens`` reach the gateway as ``cacheWriteInputTokens``
        with the client's default settings, so the gateway prices them as cache writes (SPEC §5)."""
        client = om.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant", base_url=provider.url, max_retries=0))
        message = client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=512,
            messages=[{"role": "user", "content": "Summarise the order."}],
        )
        assert om.flush(timeout=5)
        usage = message.usage
        assert usage.cache_creation_input_tokens == 500
        [record] = ingest.events
        assert record["cacheWriteInputTokens"] == usage.cache_creation_input_tokens
        assert record["cachedInputTokens"] == usage.cache_read_input_tokens
        assert record["inputTokens"] == 150 + 2000 + 500

    def test_a_wrapped_anthropic_call_sends_its_1h_cache_writes(
        self, provider: LocalServer, om: Opsmeter, ingest: MemoryIngest, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """1-hour writes cost more than 5-minute ones: the gateway gets them as ``cacheWrite1hInputTokens``."""
        usage = ANTHROPIC_MESSAGE["usage"]
        assert isinstance(usage, dict)
        one_hour = {**usage, "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 300}}
        monkeypatch.setitem(ANTHROPIC_MESSAGE, "usage", one_hour)
        client = om.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant", base_url=provider.url, max_retries=0))
        client.messages.create(model="claude-sonnet-4-5", max_tokens=512, messages=[{"role": "user", "content": "Hi"}])
        assert om.flush(timeout=5)
        [record] = ingest.events
        assert (record["cacheWriteInputTokens"], record["cacheWrite1hInputTokens"]) == (500, 300)

    def test_withholding_cache_writes_withholds_the_1h_ones_too(self) -> None:
        body = event(
            {"provider": "anthropic", "model": "m", "input_tokens": 9, "output_tokens": 1,
             "cache_write_input_tokens": 5, "cache_write_1h_input_tokens": 3},
            send_cache_write_tokens=False,
        )  # fmt: skip
        assert "cacheWriteInputTokens" not in body
        assert "cacheWrite1hInputTokens" not in body

    def test_a_naive_timestamp_is_refused_by_the_builder(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            event({"timestamp": datetime(2026, 1, 1)}, send_cache_write_tokens=False)

    def test_record_never_raises_and_counts_what_it_could_not_queue(self) -> None:
        om = Opsmeter("om_live_x_y", base_url="http://127.0.0.1:9", enabled=False)
        assert om.record(provider="p", model="m", input_tokens=1, output_tokens=1) is None
        assert (
            om.record(provider="p", model="m", input_tokens=1, output_tokens=1, timestamp=datetime(2026, 1, 1)) is None
        )
        assert om.stats().dropped == {"disabled": 1, "client_error": 1}


class TestRequestIds:
    def test_ids_are_unique_and_a_forked_child_draws_new_ones(self) -> None:
        import os

        from opsmeter._wire import new_request_id

        ids = {new_request_id() for _ in range(10_000)}
        assert len(ids) == 10_000
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, new_request_id().encode())
            os._exit(0)
        os.waitpid(pid, 0)
        child = os.read(read, 200).decode()
        assert child[:23] != new_request_id()[:23]


class TestSdkMetadata:
    def test_the_sdks_own_keys_never_push_a_record_past_the_20_keys_ingest_accepts(self) -> None:
        own = {f"k{n}": n for n in range(20)}
        assert with_sdk_tags(own, {"opsmeterUsage": "missing", "opsmeterAction": "block"}) == own
        assert with_sdk_tags({"tenantId": "t1"}, {"opsmeterUsage": "missing"}) == {
            "tenantId": "t1",
            "opsmeterUsage": "missing",
        }
        assert len(with_sdk_tags({f"k{n}": n for n in range(19)}, {"a": 1, "b": 2})) == 20
