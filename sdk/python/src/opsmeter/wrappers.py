"""Instrumented provider clients: ``om.wrap_openai(client)`` and ``om.wrap_anthropic(client)``.

The client object is returned as it was given, with its ``chat.completions.create`` / ``parse`` and
``responses.create`` / ``parse`` (OpenAI) or ``messages.create`` / ``parse`` / ``stream`` (Anthropic), and their
``beta`` twins, replaced by recording ones — sync or async, streaming included — and its ``with_options`` /
``copy`` returning wrapped copies. The providers' other helpers (``chat.completions.stream()``,
``responses.stream()``) call ``create``. Each call is recorded once: provider, model, tokens (SPEC §5's meaning),
latency, status, error code, attribution.
Per call, ``opsmeter_endpoint_tag=``, ``opsmeter_user_id=``, ``opsmeter_prompt_version=`` and
``opsmeter_metadata=`` are taken off the arguments before the provider sees them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Callable, Protocol, TypeVar

from opsmeter.background import TERMINAL
from opsmeter.context import resolve
from opsmeter.enforcement import CallScope, Decision, RuntimePolicy, block_error
from opsmeter.errors import BudgetExceededError
from opsmeter.usage import AnthropicStreamUsage, Tokens, anthropic_tokens, openai_response_tokens, openai_tokens

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
        # what the call is attributed to, taken once, at the call: enforced (scoped budgets) and recorded so
        self.attribution = resolve(
            endpoint_tag=self.own["opsmeter_endpoint_tag"],
            user_id=self.own["opsmeter_user_id"],
            prompt_version=self.own["opsmeter_prompt_version"],
        )
        self.kwargs = kwargs
        self.tokens_param = tokens_param
        self.decision: Decision | None = None
        self.started = time.perf_counter()
        self.answered: float | None = None  # when set, the latency ends there (a background call never seen to end)
        self.recorded = False
        self.usage_chunk_hidden = False  # the SDK asked for a stream's usage chunk: the caller does not get it
        self.tags: dict[str, Any] = {}  # the SDK's own metadata on the record (e.g. opsmeterUsage)

    def scope(self) -> CallScope:
        """What scoped budgets are matched against: the attribution recorded and the model asked for."""
        return CallScope.of(self.attribution.endpoint_tag, self.kwargs.get("model"), self.attribution.user_id)

    def _decide(self) -> Decision | None:
        policy: RuntimePolicy = self.om.policy
        return policy.decide(self.provider, self.kwargs, tokens_param=self.tokens_param, call=self.scope())

    def _after_decision(self, decision: Decision | None) -> dict[str, Any]:
        self.decision = decision
        if decision is None:
            return self.kwargs
        if decision.action == "block" and decision.mode == "applied":
            self.blocked(block_error(decision))
        self.kwargs = decision.params
        return self.kwargs

    def blocked(self, error: BudgetExceededError) -> None:
        if self.decision is None or self.decision.action != error.action:
            self.decision = Decision(error.action, "applied", dict(self.kwargs), str(error))
        self.record(None, status="error", error_code="budget_blocked")
        raise error

    def before(self) -> dict[str, Any]:
        self.om.policy.ensure()
        decision = self._decide()
        if decision is not None and decision.action == "queue" and decision.mode == "applied":
            waited = time.perf_counter()
            try:
                self.om.policy.wait_in_queue(
                    self.provider, self.kwargs, tokens_param=self.tokens_param, call=self.scope()
                )
            except BudgetExceededError as exc:
                self.decision = decision
                self.blocked(exc)
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
                await self.om.policy.wait_in_queue_async(
                    self.provider, self.kwargs, tokens_param=self.tokens_param, call=self.scope()
                )
            except BudgetExceededError as exc:
                self.decision = decision
                self.blocked(exc)
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
            asked = self.kwargs.get("model")
            if model and asked and self.om.policy.enabled:  # the provider's answer names the model: see ModelNames
                self.om.policy.models.recorded(self.provider, str(asked), str(model))
            self.om.record(
                provider=self.provider,
                model=str(model or asked or "unknown"),
                input_tokens=counted.input_tokens,
                output_tokens=counted.output_tokens,
                cached_input_tokens=counted.cached_input_tokens,
                cache_write_input_tokens=counted.cache_write_input_tokens,
                cache_write_1h_input_tokens=counted.cache_write_1h_input_tokens,
                reasoning_tokens=counted.reasoning_tokens,
                latency_ms=int(((self.answered or time.perf_counter()) - self.started) * 1000),
                status=status,
                error_code=str(error_code)[:64] if error_code else None,
                endpoint_tag=self.attribution.endpoint_tag,
                user_id=self.attribution.user_id,
                prompt_version=self.attribution.prompt_version,
                metadata=metadata or None,
            )
        except Exception:  # recording must never break the provider call
            return

    def failed(self, exc: BaseException) -> None:
        self.record(None, status="error", error_code=_error_code(exc))


def _error_code(exc: BaseException) -> str:
    """``http_<status>`` for an HTTP failure. An error raised inside a stream the provider answered 200 (Anthropic's
    ``error`` event, raised as an APIStatusError carrying that 200; OpenAI's error object, as an APIError without a
    status) is the error the provider sent: its type (``overloaded_error``), for OpenAI its code, else its type."""
    code = getattr(exc, "status_code", None)
    if code and code != 200:
        return f"http_{code}"
    sent = _sent_error(getattr(exc, "body", None))
    if sent:
        return sent
    return f"http_{code}" if code else type(exc).__name__


def _sent_error(body: Any) -> str | None:
    """The code or type of a provider's error body: Anthropic's ``{"type": "error", "error": {"type": ...}}``,
    OpenAI's ``{"message": ..., "type": ..., "code": ...}``."""
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error")
    if isinstance(inner, Mapping):
        body = inner
    for key in ("code", "type"):
        value = body.get(key)
        if isinstance(value, str) and value and value != "error":
            return value
    return None


class Finish(Protocol):
    """Records a stream's call from what it observed; ``error`` is the exception that ended the stream, if any."""

    def __call__(self, error: BaseException | None = None) -> None: ...


def _quietly(finish: Finish) -> Finish:
    """``finish`` runs where the caller's loop ends or fails: recording must never replace what the caller gets."""

    def finish_quietly(error: BaseException | None = None) -> None:
        try:
            finish(error)
        except Exception:
            return

    return finish_quietly


StreamHooks = tuple[Callable[[Any], bool], Finish]
"""A stream's ``observe`` and ``finish``, made per call."""

Ending = Callable[[_Call, Any], "tuple[str, str | None]"]
"""A parsed body's status and error code (a Responses API response can say it failed)."""


class _RecordedStream:
    """The provider's stream, passed through chunk by chunk; recorded once it ends, fails or is closed.

    ``observe`` sees every item and says whether the caller gets it (False for a chunk only the SDK asked for);
    ``finish`` records the call from what was observed, as the error that ended the stream if one did.
    """

    def __init__(self, stream: Any, call: _Call, observe: Callable[[Any], bool], finish: Finish) -> None:
        self._stream = stream
        self._call = call
        self._observe = observe
        self._finish = _quietly(finish)
        self._iterator = self._iterate()

    def _iterate(self) -> Iterator[Any]:
        try:
            for item in self._stream:
                if self._observe(item):
                    yield item
        except Exception as exc:  # recorded with the usage the provider reported before the failure
            self._finish(exc)
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

    def __init__(self, stream: Any, call: _Call, observe: Callable[[Any], bool], finish: Finish) -> None:
        self._stream = stream
        self._call = call
        self._observe = observe
        self._finish = _quietly(finish)
        self._iterator = self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        try:
            async for item in self._stream:
                if self._observe(item):
                    yield item
        except Exception as exc:  # recorded with the usage the provider reported before the failure
            self._finish(exc)
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


_helper_streams: ContextVar[list[Any] | None] = ContextVar("opsmeter_helper_streams", default=None)
"""While a helper's manager opens its stream: the recorded streams ``create()`` returns to it."""

RecordedStreamT = TypeVar("RecordedStreamT", _RecordedStream, _RecordedAsyncStream)


def _tracked_by_helper(stream: RecordedStreamT) -> RecordedStreamT:
    opening = _helper_streams.get()
    if opening is not None:
        opening.append(stream)
    return stream


class _HelperStreamManager:
    """OpenAI's ``chat.completions.stream()`` / ``responses.stream()`` manager, as the provider made it. Its stream
    reads a recorded ``create()`` stream, but leaving the ``with`` block closes the HTTP response directly, which
    that recorded stream would see only once collected: leaving the block ends its record at once."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self._streams: list[Any] = []

    def __enter__(self) -> Any:
        token = _helper_streams.set(self._streams)
        try:
            return self._manager.__enter__()
        finally:
            _helper_streams.reset(token)

    def __exit__(self, *exc_info: Any) -> None:
        try:
            self._manager.__exit__(*exc_info)
        finally:
            for stream in self._streams:
                stream._finish()


class _AsyncHelperStreamManager(_HelperStreamManager):
    async def __aenter__(self) -> Any:
        token = _helper_streams.set(self._streams)
        try:
            return await self._manager.__aenter__()
        finally:
            _helper_streams.reset(token)

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._manager.__aexit__(*exc_info)
        finally:
            for stream in self._streams:
                stream._finish()


class _RecordedMessageStreamManager:
    """Anthropic's ``messages.stream()``, which posts by itself rather than through ``create``: the provider's own
    manager, opened on ``with`` (after enforcement) and recorded once on leaving it, from the Message the provider's
    ``MessageStream`` accumulated. Every way of reading the helper (its events, ``text_stream``,
    ``get_final_message()``) reads that Message, and ends in the ``with`` block the helper requires."""

    def __init__(self, om: Any, kwargs: dict[str, Any], open_helper: Callable[..., Any]) -> None:
        self._om = om
        self._kwargs = kwargs
        self._open_helper = open_helper
        self._manager: Any = None
        self._stream: Any = None
        self._call: _Call | None = None

    def _new_call(self) -> _Call:
        self._call = _Call(self._om, "anthropic", dict(self._kwargs), "max_tokens")
        return self._call

    def __enter__(self) -> Any:
        call = self._new_call()
        params = call.before()
        try:
            self._manager = self._open_helper(**params)
            self._stream = self._manager.__enter__()
        except Exception as exc:
            call.failed(exc)
            raise
        return self._stream

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            self._manager.__exit__(exc_type, exc, tb)
        finally:
            _record_message(self._call, self._stream, exc)


class _RecordedAsyncMessageStreamManager(_RecordedMessageStreamManager):
    """The async client's ``messages.stream()``: ``async with``; the request (and enforcement) on entering."""

    async def __aenter__(self) -> Any:
        call = self._new_call()
        params = await call.before_async()
        try:
            self._manager = self._open_helper(**params)
            self._stream = await self._manager.__aenter__()
        except Exception as exc:
            call.failed(exc)
            raise
        return self._stream

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            await self._manager.__aexit__(exc_type, exc, tb)
        finally:
            _record_message(self._call, self._stream, exc)


def _record_message(call: _Call | None, stream: Any, exc: BaseException | None) -> None:
    """A stream helper's call, from its Message as far as it was read: one left before its first event is marked
    ``opsmeterUsage: "missing"``; one an error ended before its stop reason (``message_delta``) is that error."""
    if call is None:
        return
    try:
        message = stream.current_message_snapshot
    except Exception:  # nothing read yet: the helper has no Message
        message = None
    usage = getattr(message, "usage", None)
    if usage is None:
        call.tags["opsmeterUsage"] = "missing"
    tokens, model = anthropic_tokens(usage), getattr(message, "model", None)
    if isinstance(exc, Exception) and getattr(message, "stop_reason", None) is None:
        call.record(tokens, model=model, status="error", error_code=_error_code(exc))
    else:
        call.record(tokens, model=model)


def _openai_tokens_param(kwargs: Mapping[str, Any]) -> str:
    return "max_tokens" if "max_tokens" in kwargs and "max_completion_tokens" not in kwargs else "max_completion_tokens"


def _openai_stream(call: _Call) -> StreamHooks:
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

    def finish(error: BaseException | None = None) -> None:
        _record_stream(call, openai_tokens(seen.get("usage")), seen.get("model"), error)

    return observe, finish


def _record_stream(call: _Call, tokens: Tokens | None, model: str | None, error: BaseException | None) -> None:
    """A stream's record, from the usage it reported: as the error that ended it, if one did."""
    if error is None:
        call.record(tokens, model=model)
    else:
        call.record(tokens, model=model, status="error", error_code=_error_code(error))


RESPONSE_ENDS = ("response.completed", "response.incomplete", "response.failed")
"""The events that end a Responses stream; their ``response`` carries the usage."""


def _response_ending(call: _Call, response: Any) -> tuple[str, str | None]:
    """A Responses API response's status and error code: "failed" is an error with the code of its ``error``
    (``server_error``), "cancelled" (a background response) one coded ``cancelled``; "incomplete" counts (its usage
    is billed) and says why in ``opsmeterIncomplete``."""
    status = getattr(response, "status", None)
    if status == "failed":
        return "error", str(getattr(getattr(response, "error", None), "code", None) or "response_failed")
    if status == "cancelled":  # a background response cancelled: what it used until then is billed
        return "error", "cancelled"
    if status == "incomplete":
        reason = getattr(getattr(response, "incomplete_details", None), "reason", None)
        call.tags["opsmeterIncomplete"] = str(reason or "unknown")
    return "success", None


def _openai_response_stream(call: _Call) -> StreamHooks:
    """A Responses stream's tokens come in its last event (``response.completed``, or ``.incomplete`` /
    ``.failed``), whose ``response`` has the usage: a stream left or failed before it is marked as missing. One that
    ended ``response.failed`` is an error with the response's error code, as is one with an ``error`` event (which the
    client passes on rather than raising)."""
    seen: dict[str, Any] = {}
    call.tags["opsmeterUsage"] = "missing"

    def observe(event: Any) -> bool:
        response = getattr(event, "response", None)
        seen["model"] = getattr(response, "model", None) or seen.get("model")
        usage = getattr(response, "usage", None)
        if usage is not None:
            seen["usage"] = usage
            call.tags.pop("opsmeterUsage", None)
        kind = getattr(event, "type", None)
        if kind in RESPONSE_ENDS:
            seen["last"] = response
        elif kind == "error":
            seen["error"] = str(getattr(event, "code", None) or "error")
        return True

    def finish(error: BaseException | None = None) -> None:
        tokens, model = openai_response_tokens(seen.get("usage")), seen.get("model")
        if error is not None:
            _record_stream(call, tokens, model, error)
        elif "last" in seen:
            status, code = _response_ending(call, seen["last"])
            call.record(tokens, model=model, status=status, error_code=code)
        elif "error" in seen:
            call.record(tokens, model=model, status="error", error_code=seen["error"])
        else:
            call.record(tokens, model=model)

    return observe, finish


def _anthropic_stream(call: _Call) -> StreamHooks:
    usage = AnthropicStreamUsage()

    def observe(event: Any) -> bool:
        usage.observe(event)
        return True

    def finish(error: BaseException | None = None) -> None:
        tokens = usage.tokens()
        if tokens is None:  # left (or failed) before message_start
            call.tags["opsmeterUsage"] = "missing"
        _record_stream(call, tokens, usage.model, error)

    return observe, finish


def _instrument(
    om: Any,
    resource: Any,
    provider: str,
    tokens_param: Callable[[Mapping[str, Any]], str],
    tokens: Callable[[Any], Tokens | None],
    stream: Callable[[_Call], StreamHooks],
    prepare: Callable[[dict[str, Any]], bool],
    method: str = "create",
    ending: Ending | None = None,
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
                _record_parsed(call, parsed, tokens, ending)
                return result
            if params.get("stream"):
                return _tracked_by_helper(_RecordedAsyncStream(result, call, *stream(call)))
            _record_parsed(call, result, tokens, ending)
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
                _record_parsed(call, parsed, tokens, ending)
                return result
            if params.get("stream"):
                return _tracked_by_helper(_RecordedStream(result, call, *stream(call)))
            _record_parsed(call, result, tokens, ending)
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


def _record_parsed(
    call: _Call, parsed: Any, tokens: Callable[[Any], Tokens | None], ending: Ending | None = None
) -> None:
    """Recorded at once: with the usage of the parsed body, else without tokens (a streamed raw response),
    marked ``opsmeterUsage: "missing"``. A background Responses call not ended yet is held until the client sees it
    end (:mod:`opsmeter.background`)."""
    if ending is not None and getattr(parsed, "background", None) is True and parsed.status not in TERMINAL:
        queued_at = time.perf_counter()

        def finish(ended: Any) -> None:
            if ended is None:  # as it was answered: its latency is the queued answer's
                call.tags["opsmeterBackground"] = "unfinished"
                call.answered = queued_at
            _record_parsed(call, ended, tokens, ending)

        call.om.background.hold(str(parsed.id), finish)
        return
    if getattr(parsed, "usage", None) is None:
        call.tags["opsmeterUsage"] = "missing"
    status, code = ending(call, parsed) if ending is not None and parsed is not None else ("success", None)
    usage, model = getattr(parsed, "usage", None), getattr(parsed, "model", None)
    call.record(tokens(usage), model=model, status=status, error_code=code)


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


def _replace(resource: Any, method: str, wrap: Callable[[Callable[..., Any], bool], Callable[..., Any]]) -> None:
    """Replace ``resource.<method>`` (once) by ``wrap(original, is_async)``."""
    original = getattr(resource, method, None)
    if original is None or getattr(original, MARK, False):
        return
    is_async = inspect.iscoroutinefunction(original) or type(resource).__name__.startswith("Async")
    replaced = functools.wraps(original)(wrap(original, is_async))
    setattr(replaced, MARK, True)
    setattr(resource, method, replaced)


def _instrument_message_stream(om: Any, resource: Any) -> None:
    def wrap(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        manager = _RecordedAsyncMessageStreamManager if is_async else _RecordedMessageStreamManager
        return lambda *args, **kwargs: manager(om, kwargs, functools.partial(original, *args))

    _replace(resource, "stream", wrap)


def _end_helper_streams_on_exit(resource: Any) -> None:
    def wrap(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        manager = _AsyncHelperStreamManager if is_async else _HelperStreamManager
        return lambda *args, **kwargs: manager(original(*args, **kwargs))

    _replace(resource, "stream", wrap)


def _see_background_ends(om: Any, resource: Any) -> None:
    """``responses.retrieve`` / ``cancel``: an answer that ends a held background call records it (the caller gets
    the answer as it came; a streamed retrieve is the caller's to read and is not looked at)."""

    def see(result: Any, kwargs: Mapping[str, Any]) -> Any:
        """The parsed answer (a raw one parsed: the client caches it), or a coroutine of it from an async client."""
        return _parse_raw(result, kwargs) if _raw_mode(kwargs) else result

    def failed(exc: Exception) -> None:  # recording must never break the provider call
        om._log_once(f"background:{type(exc).__name__}", "opsmeter could not record a background call: %r", exc)

    def wrap(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        async def ask_async(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            try:
                parsed = see(result, kwargs)
                om.background.seen(await parsed if inspect.isawaitable(parsed) else parsed)
            except Exception as exc:
                failed(exc)
            return result

        def ask(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            try:
                om.background.seen(see(result, kwargs))
            except Exception as exc:
                failed(exc)
            return result

        return ask_async if is_async else ask

    for method in ("retrieve", "cancel"):
        _replace(resource, method, wrap)


def _optional(client: Any, *paths: str) -> list[Any]:
    """The resources at these dotted paths (``beta.chat.completions``) that this client version has."""
    found = []
    for path in paths:
        resource = client
        try:
            for name in path.split("."):
                resource = getattr(resource, name, None)
        except Exception:  # a client version whose property fails: nothing to wrap there
            resource = None
        if resource is not None:
            found.append(resource)
    return found


def wrap_openai(om: Any, client: ClientT) -> ClientT:
    chat = client.chat  # type: ignore[attr-defined]
    for completions in (chat.completions, *_optional(client, "beta.chat.completions")):
        for method, prepare in (("create", _ask_openai_for_stream_usage), ("parse", _no_change)):
            _instrument(om, completions, "openai", _openai_tokens_param, openai_tokens, _openai_stream, prepare, method)
        _end_helper_streams_on_exit(completions)
    for responses in _optional(client, "responses", "beta.responses"):
        for method in ("create", "parse"):
            _instrument(
                om,
                responses,
                "openai",
                lambda _: "max_output_tokens",
                openai_response_tokens,
                _openai_response_stream,
                _no_change,
                method,
                _response_ending,
            )
        _end_helper_streams_on_exit(responses)
        _see_background_ends(om, responses)
    _rewrap_copies(client, lambda copied: wrap_openai(om, copied))
    return client


def wrap_anthropic(om: Any, client: ClientT) -> ClientT:
    main = client.messages  # type: ignore[attr-defined]
    for messages in (main, *_optional(client, "beta.messages")):
        for method in ("create", "parse"):
            _instrument(
                om,
                messages,
                "anthropic",
                lambda _: "max_tokens",
                anthropic_tokens,
                _anthropic_stream,
                _no_change,
                method,
            )
        _instrument_message_stream(om, messages)
    _rewrap_copies(client, lambda copied: wrap_anthropic(om, copied))
    return client
