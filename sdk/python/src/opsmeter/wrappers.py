"""Instrumented provider clients: ``om.wrap_openai(client)`` and ``om.wrap_anthropic(client)``.

The client object is returned as it was given, with its ``chat.completions.create`` / ``parse`` (OpenAI) or
``messages.create`` / ``parse`` (Anthropic) replaced by recording ones — sync or async, streaming included —
and its ``with_options`` / ``copy`` returning wrapped copies. Each call is recorded once: provider, model,
tokens (SPEC §5's meaning), latency, status, error code, attribution.
Per call, ``opsmeter_endpoint_tag=``, ``opsmeter_user_id=``, ``opsmeter_prompt_version=`` and
``opsmeter_metadata=`` are taken off the arguments before the provider sees them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Callable, TypeVar

from opsmeter.enforcement import Decision, RuntimePolicy
from opsmeter.errors import BudgetExceededError
from opsmeter.usage import AnthropicStreamUsage, Tokens, anthropic_tokens, openai_tokens

ClientT = TypeVar("ClientT")
METADATA_KEYS = 20
"""SPEC §5: a record's metadata holds at most 20 keys; ingest refuses more."""


def with_sdk_tags(own: Mapping[str, Any], tags: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's metadata and then the SDK's own keys while they fit in the 20 ingest accepts, so a record is
    never refused for what the SDK added (the caller's keys are kept first)."""
    merged = dict(own)
    for key, value in tags.items():
        if key in merged or len(merged) < METADATA_KEYS:
            merged[key] = value
    return merged


OPSMETER_KWARGS = ("opsmeter_endpoint_tag", "opsmeter_user_id", "opsmeter_prompt_version", "opsmeter_metadata")
MARK = "__opsmeter_wrapped__"


class _Call:
    """One provider call: enforcement before, one record after."""

    def __init__(self, om: Any, provider: str, kwargs: dict[str, Any], tokens_param: str) -> None:
        self.om = om
        self.provider = provider
        self.own = {name: kwargs.pop(name, None) for name in OPSMETER_KWARGS}
        self.kwargs = kwargs
        self.tokens_param = tokens_param
        self.decision: Decision | None = None
        self.started = time.perf_counter()
        self.recorded = False
        self.usage_chunk_hidden = False  # the SDK asked for a stream's usage chunk: the caller does not get it
        self.tags: dict[str, Any] = {}  # the SDK's own metadata on the record (e.g. opsmeterUsage)

    def _decide(self) -> Decision | None:
        policy: RuntimePolicy = self.om.policy
        return policy.decide(self.provider, self.kwargs, tokens_param=self.tokens_param)

    def _after_decision(self, decision: Decision | None) -> dict[str, Any]:
        self.decision = decision
        if decision is None:
            return self.kwargs
        if decision.action == "block" and decision.mode == "applied":
            self.blocked("the workspace budget is exceeded; its runtime action blocks provider calls")
        self.kwargs = decision.params
        return self.kwargs

    def blocked(self, message: str, action: str = "block") -> None:
        if self.decision is None or self.decision.action != action:
            self.decision = Decision(action, "applied", dict(self.kwargs), message)
        self.record(None, status="error", error_code="budget_blocked")
        raise BudgetExceededError(message, action=action)

    def before(self) -> dict[str, Any]:
        self.om.policy.ensure()
        decision = self._decide()
        if decision is not None and decision.action == "queue" and decision.mode == "applied":
            waited = time.perf_counter()
            try:
                self.om.policy.wait_in_queue(self.provider, self.kwargs, tokens_param=self.tokens_param)
            except BudgetExceededError as exc:
                self.decision = decision
                self.blocked(str(exc), action="queue")
            decision.detail = f"waited {time.perf_counter() - waited:.1f}s for the budget window"
        self.started = time.perf_counter()
        return self._after_decision(decision)

    async def before_async(self) -> dict[str, Any]:
        if self.om.policy.enabled and self.om.policy.snapshot is None:
            await asyncio.to_thread(self.om.policy.ensure)
        decision = self._decide()
        if decision is not None and decision.action == "queue" and decision.mode == "applied":
            waited = time.perf_counter()
            try:
                await self.om.policy.wait_in_queue_async(self.provider, self.kwargs, tokens_param=self.tokens_param)
            except BudgetExceededError as exc:
                self.decision = decision
                self.blocked(str(exc), action="queue")
            decision.detail = f"waited {time.perf_counter() - waited:.1f}s for the budget window"
        self.started = time.perf_counter()
        return self._after_decision(decision)

    def record(
        self, tokens: Tokens | None, *, model: str | None = None, status: str = "success", error_code: Any = None
    ) -> None:
        if self.recorded:
            return
        self.recorded = True
        try:
            sdk_tags = {**(self.decision.metadata() if self.decision is not None else {}), **self.tags}
            metadata = with_sdk_tags(self.own["opsmeter_metadata"] or {}, sdk_tags)
            counted = tokens or Tokens()
            self.om.record(
                provider=self.provider,
                model=str(model or self.kwargs.get("model") or "unknown"),
                input_tokens=counted.input_tokens,
                output_tokens=counted.output_tokens,
                cached_input_tokens=counted.cached_input_tokens,
                cache_write_input_tokens=counted.cache_write_input_tokens,
                cache_write_1h_input_tokens=counted.cache_write_1h_input_tokens,
                reasoning_tokens=counted.reasoning_tokens,
                latency_ms=int((time.perf_counter() - self.started) * 1000),
                status=status,
                error_code=str(error_code)[:64] if error_code else None,
                endpoint_tag=self.own["opsmeter_endpoint_tag"],
                user_id=self.own["opsmeter_user_id"],
                prompt_version=self.own["opsmeter_prompt_version"],
                metadata=metadata or None,
            )
        except Exception:  # recording must never break the provider call
            return

    def failed(self, exc: BaseException) -> None:
        code = getattr(exc, "status_code", None)
        self.record(None, status="error", error_code=f"http_{code}" if code else type(exc).__name__)


class _RecordedStream:
    """The provider's stream, passed through chunk by chunk; recorded once it ends, fails or is closed.

    ``observe`` sees every item and says whether the caller gets it (False for a chunk only the SDK asked for).
    """

    def __init__(self, stream: Any, call: _Call, observe: Callable[[Any], bool], finish: Callable[[], None]) -> None:
        self._stream = stream
        self._call = call
        self._observe = observe
        self._finish = finish
        self._iterator = self._iterate()

    def _iterate(self) -> Iterator[Any]:
        try:
            for item in self._stream:
                if self._observe(item):
                    yield item
        except Exception as exc:
            self._call.failed(exc)
            raise
        finally:
            self._finish()

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self._iterator:  # noqa: UP028 - `yield from` would close the stream on `break`
                yield item
        finally:  # a loop left early (`break`) is recorded then; a later loop still goes on with the stream
            self._finish()

    def __next__(self) -> Any:
        return next(self._iterator)

    def __enter__(self) -> _RecordedStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._finish()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _RecordedAsyncStream:
    """An async client's stream, as the provider's ``AsyncStream``: ``async for``, ``__anext__``, ``async with``
    and ``await stream.close()`` (which closes the provider's connection); recorded once it ends, fails or is
    closed."""

    def __init__(self, stream: Any, call: _Call, observe: Callable[[Any], bool], finish: Callable[[], None]) -> None:
        self._stream = stream
        self._call = call
        self._observe = observe
        self._finish = finish
        self._iterator = self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        try:
            async for item in self._stream:
                if self._observe(item):
                    yield item
        except Exception as exc:
            self._call.failed(exc)
            raise
        finally:
            self._finish()

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            async for item in self._iterator:
                yield item
        finally:  # a loop left early (`break`) is recorded then; a later loop still goes on with the stream
            self._finish()

    async def __anext__(self) -> Any:
        return await self._iterator.__anext__()

    async def __aenter__(self) -> _RecordedAsyncStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._stream.close()
        finally:
            self._finish()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _openai_tokens_param(kwargs: Mapping[str, Any]) -> str:
    return "max_tokens" if "max_tokens" in kwargs and "max_completion_tokens" not in kwargs else "max_completion_tokens"


def _openai_stream(call: _Call) -> tuple[Callable[[Any], bool], Callable[[], None]]:
    """A stream's tokens come in its usage chunk (``choices: []``), the last before ``[DONE]``: a stream left or
    failed before it is recorded without tokens, marked ``opsmeterUsage: "missing"`` (the prompt is billed)."""
    seen: dict[str, Any] = {}
    call.tags["opsmeterUsage"] = "missing"

    def observe(chunk: Any) -> bool:
        usage = getattr(chunk, "usage", None)
        seen["model"] = getattr(chunk, "model", None) or seen.get("model")
        if usage is None:
            return True
        seen["usage"] = usage
        call.tags.pop("opsmeterUsage", None)
        # a usage-only chunk the caller did not ask for would break `chunk.choices[0]` in their loop
        return not (call.usage_chunk_hidden and not getattr(chunk, "choices", None))

    def finish() -> None:
        call.record(openai_tokens(seen.get("usage")), model=seen.get("model"))

    return observe, finish


def _anthropic_stream(call: _Call) -> tuple[Callable[[Any], bool], Callable[[], None]]:
    usage = AnthropicStreamUsage()

    def observe(event: Any) -> bool:
        usage.observe(event)
        return True

    return observe, lambda: call.record(usage.tokens(), model=usage.model)


def _instrument(
    om: Any,
    resource: Any,
    provider: str,
    tokens_param: Callable[[Mapping[str, Any]], str],
    tokens: Callable[[Any], Tokens | None],
    stream: Callable[[_Call], tuple[Callable[[Any], bool], Callable[[], None]]],
    prepare: Callable[[dict[str, Any]], bool],
    method: str = "create",
) -> None:
    original = getattr(resource, method, None)
    if original is None or getattr(original, MARK, False):
        return
    if inspect.iscoroutinefunction(original) or type(resource).__name__.startswith("Async"):

        @functools.wraps(original)
        async def create_async(*args: Any, **kwargs: Any) -> Any:
            call = _Call(om, provider, kwargs, tokens_param(kwargs))
            params = await call.before_async()
            call.usage_chunk_hidden = prepare(params)
            try:
                result = await original(*args, **params)
            except Exception as exc:
                call.failed(exc)
                raise
            if _raw_mode(params):
                parsed = _parse_raw(result, params)
                if inspect.isawaitable(parsed):  # an async client's raw response parses in a coroutine
                    try:
                        parsed = await parsed
                    except Exception:
                        parsed = None
                _record_parsed(call, parsed, tokens)
                return result
            if params.get("stream"):
                return _RecordedAsyncStream(result, call, *stream(call))
            call.record(tokens(getattr(result, "usage", None)), model=getattr(result, "model", None))
            return result

        setattr(create_async, MARK, True)
        setattr(resource, method, create_async)
    else:

        @functools.wraps(original)
        def create(*args: Any, **kwargs: Any) -> Any:
            call = _Call(om, provider, kwargs, tokens_param(kwargs))
            params = call.before()
            call.usage_chunk_hidden = prepare(params)
            try:
                result = original(*args, **params)
            except Exception as exc:
                call.failed(exc)
                raise
            if _raw_mode(params):
                parsed = _parse_raw(result, params)
                if inspect.isawaitable(parsed):  # not expected from a sync client
                    getattr(parsed, "close", lambda: None)()
                    parsed = None
                _record_parsed(call, parsed, tokens)
                return result
            if params.get("stream"):
                return _RecordedStream(result, call, *stream(call))
            call.record(tokens(getattr(result, "usage", None)), model=getattr(result, "model", None))
            return result

        setattr(create, MARK, True)
        setattr(resource, method, create)


RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"


def _raw_mode(params: Mapping[str, Any]) -> str | None:
    """How ``with_raw_response`` ("true" / "raw") or ``with_streaming_response`` ("stream") called ``create``."""
    headers = params.get("extra_headers")
    value = headers.get(RAW_RESPONSE_HEADER) if isinstance(headers, Mapping) else None
    return str(value) if value else None


def _parse_raw(result: Any, params: Mapping[str, Any]) -> Any:
    """The parsed body of a raw response whose body is already read (the client caches the parse, so the
    caller's own ``parse()`` costs nothing more); None for a streamed one, which is the caller's to read."""
    if _raw_mode(params) not in ("true", "raw") or params.get("stream"):
        return None
    try:
        return result.parse()
    except Exception:
        return None


def _record_parsed(call: _Call, parsed: Any, tokens: Callable[[Any], Tokens | None]) -> None:
    """Recorded at once: with the usage when the body was parsed, else without tokens (a streamed raw response),
    marked ``opsmeterUsage: "missing"``."""
    if getattr(parsed, "usage", None) is None:
        call.tags["opsmeterUsage"] = "missing"
    call.record(tokens(getattr(parsed, "usage", None)), model=getattr(parsed, "model", None))


def _ask_openai_for_stream_usage(params: dict[str, Any]) -> bool:
    """A stream reports usage only when asked (a final chunk with empty ``choices``): ask unless told otherwise.
    True when the SDK asked: that usage-only chunk is then read by the SDK and not passed on to the caller, whose
    loop (``chunk.choices[0]``) was written for a stream without it.

    Unset is also ``omit`` / ``NOT_GIVEN`` (falsy sentinels; ``chat.completions.stream()`` passes one) or None; an
    options dict without ``include_usage`` gets it added; an explicit ``include_usage`` is left as it is. A raw
    stream (``with_raw_response`` / ``with_streaming_response``) is the caller's to read: it is not asked.
    """
    if not params.get("stream") or _raw_mode(params):
        return False
    options = params.get("stream_options")
    if not options:
        params["stream_options"] = {"include_usage": True}
    elif isinstance(options, Mapping) and "include_usage" not in options:
        params["stream_options"] = {**options, "include_usage": True}
    else:
        return False
    return True


def _no_change(_: dict[str, Any]) -> bool:
    return False


def _rewrap_copies(client: Any, wrap: Callable[[Any], Any]) -> None:
    """``client.with_options(...)`` / ``client.copy(...)`` make a new client: it comes back wrapped too."""
    original = getattr(client, "copy", None)
    if original is None or getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def copy(*args: Any, **kwargs: Any) -> Any:
        return wrap(original(*args, **kwargs))

    setattr(copy, MARK, True)
    client.copy = copy
    client.with_options = copy


def wrap_openai(om: Any, client: ClientT) -> ClientT:
    completions = client.chat.completions  # type: ignore[attr-defined]
    for method, prepare in (("create", _ask_openai_for_stream_usage), ("parse", _no_change)):
        _instrument(om, completions, "openai", _openai_tokens_param, openai_tokens, _openai_stream, prepare, method)
    _rewrap_copies(client, lambda copied: wrap_openai(om, copied))
    return client


def wrap_anthropic(om: Any, client: ClientT) -> ClientT:
    messages = client.messages  # type: ignore[attr-defined]
    for method in ("create", "parse"):
        _instrument(
            om, messages, "anthropic", lambda _: "max_tokens", anthropic_tokens, _anthropic_stream, _no_change, method
        )
    _rewrap_copies(client, lambda copied: wrap_anthropic(om, copied))
    return client
