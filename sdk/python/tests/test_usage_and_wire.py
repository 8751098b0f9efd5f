"""Pure parts of the SDK: provider usage → SPEC §5 tokens, and the wire record."""

from datetime import datetime

import pytest

from opsmeter import Opsmeter, anthropic_tokens, openai_tokens
from opsmeter._wire import event
from opsmeter.usage import AnthropicStreamUsage


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
    def test_fields_are_camel_case_with_an_id_and_a_timestamp_and_no_cache_write_field_yet(self) -> None:
        body = event(
            {"provider": "openai", "model": "x", "input_tokens": 1, "output_tokens": 2, "cache_write_input_tokens": 5},
            send_cache_write_tokens=False,
        )
        assert body["inputTokens"] == 1
        assert "cacheWriteInputTokens" not in body
        assert body["externalRequestId"].startswith("om_")
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None

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
