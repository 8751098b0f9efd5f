"""Provider usage → SPEC §5 token counts.

SPEC §5 counts cache reads and cache writes inside ``inputTokens`` and reasoning inside ``outputTokens``.
OpenAI already does (``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``); Anthropic reports
``cache_read_input_tokens`` and ``cache_creation_input_tokens`` apart from ``input_tokens``, so they are added.
Anthropic's ``cache_creation.ephemeral_1h_input_tokens`` (the part of the cache writes with a 1-hour TTL, billed
at 2x input rather than 1.25x) becomes ``cacheWrite1hInputTokens``, a part of ``cacheWriteInputTokens``.
Server-side compaction's ``usage.iterations`` entries of type ``compaction`` are billed on the requested model but
left out of the top-level fields, so each is added in, field by field, the same way; ``message`` entries are already
in the top-level fields, and ``advisor_message`` / ``fallback_message`` ones (possibly another model) are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tokens:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_1h_input_tokens: int | None = None
    """Part of ``cache_write_input_tokens``; None unless the call wrote any (a gateway before 2026-12 rejects the
    field, so it is only sent when it counts)."""


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def openai_tokens(usage: Any) -> Tokens | None:
    """From a chat completion's (or the final stream chunk's) ``usage``; None when there is none."""
    if usage is None:
        return None
    prompt = _get(usage, "prompt_tokens_details")
    completion = _get(usage, "completion_tokens_details")
    return Tokens(
        input_tokens=_int(_get(usage, "prompt_tokens")) or 0,
        output_tokens=_int(_get(usage, "completion_tokens")) or 0,
        cached_input_tokens=_int(_get(prompt, "cached_tokens")),
        cache_write_input_tokens=_int(_get(prompt, "cache_write_tokens")),
        reasoning_tokens=_int(_get(completion, "reasoning_tokens")),
    )


def openai_response_tokens(usage: Any) -> Tokens | None:
    """From a Responses API ``response.usage`` (``input_tokens`` includes the cached ones, ``output_tokens`` the
    reasoning); None when there is none."""
    if usage is None:
        return None
    return Tokens(
        input_tokens=_int(_get(usage, "input_tokens")) or 0,
        output_tokens=_int(_get(usage, "output_tokens")) or 0,
        cached_input_tokens=_int(_get(_get(usage, "input_tokens_details"), "cached_tokens")),
        reasoning_tokens=_int(_get(_get(usage, "output_tokens_details"), "reasoning_tokens")),
    )


def _anthropic_parts(usage: Any) -> tuple[int, int, int | None, int | None, int]:
    """(input, output, cache reads, cache writes, 1-hour cache writes) of one usage object or iteration entry."""
    reads = _int(_get(usage, "cache_read_input_tokens"))
    writes = _int(_get(usage, "cache_creation_input_tokens"))
    one_hour = min(_int(_get(_get(usage, "cache_creation"), "ephemeral_1h_input_tokens")) or 0, writes or 0)
    return _int(_get(usage, "input_tokens")) or 0, _int(_get(usage, "output_tokens")) or 0, reads, writes, one_hour


def _add(total: int | None, part: int | None) -> int | None:
    return total if part is None else (total or 0) + part


def anthropic_tokens(usage: Any) -> Tokens | None:
    """From a message's ``usage`` (or the usage a stream accumulated); None when there is none. Its ``compaction``
    iterations (billed, but not in the top-level fields) are added in."""
    if usage is None:
        return None
    fresh, output, reads, writes, one_hour = _anthropic_parts(usage)
    for entry in _get(usage, "iterations") or ():
        if _get(entry, "type") != "compaction":
            continue
        e_fresh, e_output, e_reads, e_writes, e_one_hour = _anthropic_parts(entry)
        fresh, output, one_hour = fresh + e_fresh, output + e_output, one_hour + e_one_hour
        reads, writes = _add(reads, e_reads), _add(writes, e_writes)
    details = _get(usage, "output_tokens_details")
    return Tokens(
        input_tokens=fresh + (reads or 0) + (writes or 0),
        output_tokens=output,
        cached_input_tokens=reads,
        cache_write_input_tokens=writes,
        reasoning_tokens=_int(_get(details, "thinking_tokens")),
        cache_write_1h_input_tokens=one_hour or None,
    )


class AnthropicStreamUsage:
    """Usage across a stream's events: ``message_start`` carries the input side, ``message_delta`` the
    cumulative output (and, on newer API versions, cumulative input and cache fields, and ``iterations``)."""

    FIELDS = (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "cache_creation",
        "iterations",
    )

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.model: str | None = None

    def observe(self, event: Any) -> None:
        kind = _get(event, "type")
        if kind == "message_start":
            message = _get(event, "message")
            self.model = _get(message, "model") or self.model
            self._take(_get(message, "usage"))
        elif kind == "message_delta":
            self._take(_get(event, "usage"))

    def _take(self, usage: Any) -> None:
        for name in (*self.FIELDS, "output_tokens_details"):
            value = _get(usage, name)
            if value is not None:
                self.values[name] = value

    def tokens(self) -> Tokens | None:
        return anthropic_tokens(self.values) if self.values else None
