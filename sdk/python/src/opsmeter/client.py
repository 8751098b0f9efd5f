"""The Opsmeter client: ``record()`` puts a record on a bounded queue; one background thread sends batches.

Nothing here raises into the caller or blocks it for longer than a queue put (the runtime enforcement of
wrapped provider calls is the one deliberate exception, and only when turned on).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import httpcore  # noqa: F401  (httpx imports it lazily in the sender; a fork mid-import breaks it in the child)
import httpx

from opsmeter import _wire
from opsmeter.background import BackgroundCalls
from opsmeter.context import attribution, resolve
from opsmeter.enforcement import RuntimePolicy
from opsmeter.status import Stats, WorkspaceFlags

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opsmeter.context import Attribution

log = logging.getLogger("opsmeter")

DEFAULT_BASE_URL = "https://api.opsmeter.io"
BATCH_PATH = "/v1/ingest/llm-requests"
STATUS_PATH = "/v1/diagnostics/workspace-status"
RUNTIME_POLICY_PATH = "/v1/runtime/policy"
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1024 * 1024
FlagsCallback = Callable[[WorkspaceFlags], None]
ClientT = TypeVar("ClientT")
# record() checks that a record can be encoded (strict JSON: no NaN) before queueing it; a record that cannot be
# is dropped there and counted, never carried to the sender where it would take its batch down with it
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_CLIENTS: weakref.WeakSet[Opsmeter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Opsmeter:
    """One per process and API key. ``record()`` never raises and returns at once; call ``shutdown()`` at
    the end (it also runs at interpreter exit)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        policy_url: str | None = None,
        timeout: float = 0.6,
        max_queue_size: int = 20_000,
        flush_at: int = 100,
        flush_interval: float = 0.5,
        max_batch_events: int = MAX_BATCH_EVENTS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        status_check_interval: float = 60.0,
        on_budget_warning: FlagsCallback | None = None,
        on_budget_exceeded: FlagsCallback | None = None,
        on_plan_limit: FlagsCallback | None = None,
        enforcement: bool = False,
        policy_refresh_interval: float = 10.0,
        send_cache_write_tokens: bool = True,
        environment: str | None = None,
        data_mode: str | None = None,
        transport: httpx.BaseTransport | None = None,
        enabled: bool = True,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._max_queue_size = max(1, max_queue_size)
        self._flush_at = max(1, flush_at)
        self._flush_interval = flush_interval
        self._max_batch_events = max(1, min(max_batch_events, MAX_BATCH_EVENTS))
        self._max_batch_bytes = max(1024, min(max_batch_bytes, MAX_BATCH_BYTES))
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._status_check_interval = status_check_interval
        self._callbacks: dict[str, FlagsCallback | None] = {
            "budget_warning": on_budget_warning,
            "budget_exceeded": on_budget_exceeded,
            "plan_limit_reached": on_plan_limit,
        }
        self._send_cache_write_tokens = send_cache_write_tokens
        self._defaults = {"environment": environment, "data_mode": data_mode}
        self._transport = transport
        self._enabled = enabled and bool(api_key)
        problem = _config_problem(api_key, [self.base_url, policy_url]) if api_key else None
        if problem is not None:  # said once here; never an exception in record() or in a wrapped provider call
            log.warning("opsmeter is off (telemetry and enforcement): %s", problem)
            self._enabled = False
            enforcement = False
        self._verify = _ssl_context() if self._enabled and transport is None else True

        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._flush_requests = 0
        self._stopping = False
        self._abandon = threading.Event()
        self._counters: dict[str, int] = {
            "recorded": 0,
            "sent": 0,
            "accepted": 0,
            "duplicates": 0,
            "batches": 0,
            "retries": 0,
        }
        self._dropped: dict[str, int] = {}
        self._logged: set[str] = set()
        self._flags = WorkspaceFlags()
        self._flags_at = 0.0
        self._paused_at: float | None = None
        self._last_status_check = 0.0

        self.policy = RuntimePolicy(
            self,
            enabled=enforcement,
            url=(policy_url or base_url).rstrip("/") + RUNTIME_POLICY_PATH,
            refresh_interval=policy_refresh_interval,
        )
        self.background = BackgroundCalls()
        """Background Responses calls not yet seen to end (recorded when they do, or unfinished at shutdown)."""
        self._worker: threading.Thread | None = None
        if self._enabled:
            self._start_worker()
            atexit.register(self.shutdown)
            _CLIENTS.add(self)

    def _start_worker(self) -> None:
        worker = threading.Thread(target=self._run, name="opsmeter-sender", daemon=True)
        self._worker = worker
        worker.start()

    def _ensure_worker(self) -> None:
        """A forked child has no sender thread (only the forking thread survives a fork): start one lazily."""
        if self._worker is not None or not self._enabled or self._stopping:
            return
        with self._cond:
            if self._worker is None and not self._stopping:
                self._start_worker()

    def _after_fork(self) -> None:
        """In a forked child (gunicorn --preload, Celery prefork, multiprocessing): the parent's sender thread is
        gone and its lock may have been held at the fork, so the child gets new ones, and a new sender with its
        first record. What the parent had queued stays the parent's to send (it would be sent twice otherwise),
        so the child starts with an empty queue and its own counters."""
        self._cond = threading.Condition()
        self._abandon = threading.Event()
        self._queue = deque()
        self._in_flight = 0
        self._flush_requests = 0
        self._counters = dict.fromkeys(self._counters, 0)
        self._dropped = {}
        self._worker = None
        self.policy._after_fork()
        self.background._after_fork()

    # --- the caller's side -------------------------------------------------------------------------------

    def record(
        self,
        *,
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        external_request_id: str | None = None,
        endpoint_tag: str | None = None,
        prompt_version: str | None = None,
        user_id: str | None = None,
        total_tokens: int | None = None,
        cached_input_tokens: int | None = None,
        cache_write_input_tokens: int | None = None,
        cache_write_1h_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        reported_cost_usd: str | None = None,
        latency_ms: int | None = None,
        status: str | None = None,
        error_code: str | None = None,
        data_mode: str | None = None,
        environment: str | None = None,
        timestamp: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Queue one LLM call's telemetry (SPEC §5 fields); its ``externalRequestId``, or None if dropped.

        Cache reads and writes count inside ``input_tokens``, reasoning inside ``output_tokens``; Anthropic's 1-hour
        cache writes (``cache_write_1h_input_tokens``) are part of ``cache_write_input_tokens``.
        """
        try:
            attributed = resolve(endpoint_tag=endpoint_tag, user_id=user_id, prompt_version=prompt_version)
            values = {
                "external_request_id": external_request_id,
                "provider": provider,
                "model": model,
                "endpoint_tag": attributed.endpoint_tag,
                "prompt_version": attributed.prompt_version,
                "user_id": attributed.user_id,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": total_tokens,
                "cached_input_tokens": cached_input_tokens,
                "cache_write_input_tokens": cache_write_input_tokens,
                "cache_write_1h_input_tokens": cache_write_1h_input_tokens,
                "reasoning_tokens": reasoning_tokens,
                "reported_cost_usd": reported_cost_usd,
                "latency_ms": latency_ms,
                "status": status,
                "error_code": error_code,
                "data_mode": data_mode or self._defaults["data_mode"],
                "environment": environment or self._defaults["environment"],
                "timestamp": timestamp,
                "metadata": dict(metadata) if metadata else None,
            }
            body = _wire.event(values, send_cache_write_tokens=self._send_cache_write_tokens)
            try:
                _ENCODER.encode(body)
            except (TypeError, ValueError, RecursionError) as exc:
                self._log_once(
                    f"unencodable:{type(exc).__name__}", "opsmeter record() dropped a record it cannot encode: %r", exc
                )
                self._bump("recorded")
                self._drop("unencodable")
                return None
            return body["externalRequestId"] if self._enqueue(body) else None
        except Exception as exc:
            self._log_once(f"record:{type(exc).__name__}", "opsmeter record() could not queue a record: %r", exc)
            self._drop("client_error")
            return None

    def _enqueue(self, body: dict[str, Any]) -> bool:
        self._ensure_worker()
        with self._cond:
            self._counters["recorded"] += 1
            if not self._enabled or self._stopping:
                self._drop_locked("disabled" if not self._enabled else "shutdown")
                return False
            if self._paused_at is not None:
                self._drop_locked("plan_limit_reached")
                return False
            if len(self._queue) >= self._max_queue_size:
                self._queue.popleft()
                self._drop_locked("queue_full")
            self._queue.append(body)
            if len(self._queue) == self._flush_at:
                self._cond.notify_all()
        return True

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Send everything queued now; True when nothing is left queued or in flight within ``timeout``."""
        self._ensure_worker()
        if self._worker is None:
            return not self._queue
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_requests += 1
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left if left is None else min(left, 0.5))
                return True
            finally:
                self._flush_requests -= 1

    def shutdown(self, timeout: float | None = 5.0) -> None:
        """Record the background calls not seen to end, flush what is queued (for up to ``timeout``), then stop the
        sender; later records are dropped."""
        worker = self._worker
        if worker is None:
            return
        try:
            atexit.unregister(self.shutdown)
            self.background.finish_all()  # recorded without their usage rather than not at all
            self.flush(timeout)
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            self._abandon.set()
            worker.join(timeout if timeout is not None else None)
        except Exception as exc:  # shutting down must not raise either
            log.warning("opsmeter shutdown: %r", exc)
        finally:
            self._worker = None

    def stats(self) -> Stats:
        with self._cond:
            return Stats(
                recorded=self._counters["recorded"],
                sent=self._counters["sent"],
                accepted=self._counters["accepted"],
                duplicates=self._counters["duplicates"],
                dropped=dict(self._dropped),
                queue_depth=len(self._queue),
                batches=self._counters["batches"],
                retries=self._counters["retries"],
            )

    @property
    def flags(self) -> WorkspaceFlags:
        """The workspace's flags as the last ingest answer or status check said them."""
        return self._flags

    @property
    def flags_at(self) -> float:
        return self._flags_at

    def attribution(
        self, *, endpoint_tag: str | None = None, user_id: str | None = None, prompt_version: str | None = None
    ) -> AbstractContextManager[Attribution]:
        """``with om.attribution(endpoint_tag="checkout.ai_summary"):`` — calls inside are tagged so."""
        return attribution(endpoint_tag=endpoint_tag, user_id=user_id, prompt_version=prompt_version)

    def wrap_openai(self, client: ClientT) -> ClientT:
        """The same OpenAI client (sync or async), its chat completions recorded (and enforced, if on)."""
        from opsmeter.wrappers import wrap_openai

        return wrap_openai(self, client)

    def wrap_anthropic(self, client: ClientT) -> ClientT:
        """The same Anthropic client (sync or async), its messages recorded (and enforced, if on)."""
        from opsmeter.wrappers import wrap_anthropic

        return wrap_anthropic(self, client)

    # --- the sender thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # the sender could not even start (a bad key or URL): count, never hold, records
            self._log_once("sender", "opsmeter sender stopped, telemetry is off: %r", exc)
            with self._cond:
                self._enabled = False
                for _ in range(len(self._queue)):
                    self._drop_locked("client_error")
                self._queue.clear()
                self._in_flight = 0
                self._cond.notify_all()

    def _http(self) -> httpx.Client:
        """An HTTP client to Opsmeter as configured: timeout, transport (if given), TLS and the key."""
        return httpx.Client(
            timeout=self.timeout,
            transport=self._transport,
            verify=self._verify,
            headers={"X-API-Key": self.api_key, "User-Agent": "opsmeter-python/0.1.0"},
        )

    def _loop(self) -> None:
        with self._http() as http:
            while True:
                with self._cond:
                    deadline = time.monotonic() + self._flush_interval
                    while not (self._stopping or self._flush_requests or len(self._queue) >= self._flush_at):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    stopping = self._stopping
                try:
                    self._periodic(http)
                    self._drain(http)
                except Exception as exc:  # the sender must survive anything
                    self._log_once(f"worker:{type(exc).__name__}", "opsmeter sender error: %r", exc)
                if stopping:
                    with self._cond:
                        for _ in range(len(self._queue)):
                            self._drop_locked("shutdown")
                        self._queue.clear()
                        self._cond.notify_all()
                    return

    def _periodic(self, http: httpx.Client) -> None:
        now = time.monotonic()
        if self._paused_at is not None and now - self._last_status_check >= self._status_check_interval:
            self._last_status_check = now
            self._check_status(http)
        self.policy.maybe_refresh(http)

    def _check_status(self, http: httpx.Client) -> None:
        try:
            answer = http.get(self.base_url + STATUS_PATH)
        except httpx.HTTPError:
            return
        if answer.status_code != 200:
            return
        self._update_flags(WorkspaceFlags.from_answer(answer.json()))

    def _take_batch(self) -> list[bytes]:
        """Up to the batch limits; records are taken under the lock but encoded outside it, so a
        ``record()`` never waits for the sender's JSON work."""
        with self._cond:
            taken = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch_events))]
            self._in_flight = len(taken)
        batch: list[bytes] = []
        size = 16
        for index, record in enumerate(taken):
            try:
                encoded = json.dumps(record, separators=(",", ":"), allow_nan=False).encode()
            except (TypeError, ValueError, RecursionError) as exc:  # record() checks this; counted, never lost
                self._log_once(
                    f"unencodable:{type(exc).__name__}", "opsmeter dropped a record it cannot encode: %r", exc
                )
                with self._cond:
                    self._drop_locked("unencodable")
                    self._in_flight -= 1
                continue
            if batch and size + len(encoded) + 1 > self._max_batch_bytes:
                with self._cond:
                    self._queue.extendleft(reversed(taken[index:]))
                    while len(self._queue) > self._max_queue_size:  # record() refilled it meanwhile
                        self._queue.popleft()
                        self._drop_locked("queue_full")
                    self._in_flight = len(batch)
                break
            batch.append(encoded)
            size += len(encoded) + 1
        return batch

    def _drain(self, http: httpx.Client) -> None:
        while True:
            if self._paused_at is not None:
                with self._cond:
                    for _ in range(len(self._queue)):
                        self._drop_locked("plan_limit_reached")
                    self._queue.clear()
                    self._cond.notify_all()
                return
            batch = self._take_batch()
            if not batch:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()
                    if self._queue:  # every record taken was unencodable (and counted); more are queued
                        continue
                return
            try:
                self._send(http, batch)
            except Exception as exc:  # whatever fails, the batch's records are counted (as dropped), never lost
                self._log_once(f"send:{type(exc).__name__}", "opsmeter could not send a batch: %r", exc)
                self._drop_many("client_error", len(batch))
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _send(self, http: httpx.Client, batch: list[bytes]) -> None:
        """Send one batch until every event is answered for good, retrying 429s, 5xx and network errors."""
        pending = batch
        failures = 0
        while pending:
            if self._abandon.is_set():
                self._drop_many("shutdown", len(pending))
                return
            self._bump("batches")
            self._bump("sent", len(pending))
            try:
                wait, retry, failed = self._post(http, pending)
            except Exception as exc:  # not the network: a bad URL or key, a client bug. Retrying cannot help.
                self._log_once(f"post:{type(exc).__name__}", "opsmeter could not send a batch: %r", exc)
                self._drop_many("client_error", len(pending))
                return
            if failed:
                failures += 1
                if failures > self._max_retries:
                    self._drop_many(failed, len(retry))
                    return
                wait = max(wait, self._backoff(failures))
            pending = retry
            if pending:
                self._bump("retries")
                self._abandon.wait(wait)

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * (2 ** (failures - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def _post(self, http: httpx.Client, events: list[bytes]) -> tuple[float, list[bytes], str | None]:
        """One POST: (seconds to wait, events to send again, why it failed if a retry is a failure)."""
        body = b'{"events":[' + b",".join(events) + b"]}"
        try:
            answer = http.post(self.base_url + BATCH_PATH, content=body, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            self._log_once(f"net:{type(exc).__name__}", "opsmeter ingest unreachable: %r (retrying)", exc)
            return 0.0, events, "network_error"
        retry_after = _retry_after(answer.headers.get("Retry-After"))
        status = answer.status_code
        payload = _json(answer)
        if payload is not None:
            self._update_flags(WorkspaceFlags.from_answer(payload), answer=True)
        if status == 207 and payload is not None and isinstance(payload.get("results"), list):
            self._learn_models(events, payload["results"])
            return self._read_results(events, payload["results"], retry_after)
        if status == 429:
            return retry_after or 1.0, events, None
        if status >= 500:
            return retry_after, events, "server_error"
        reason = str((payload or {}).get("reason") or f"http_{status}")
        if status == 402:
            self._pause(reason)
        if reason == "invalid_payload":
            self._log_once(f"batch:{status}", "opsmeter ingest refused a batch (%s): %s", status, answer.text[:300])
        elif status == 401:
            self._log_once("unauthorized", "opsmeter ingest: the API key is not valid; records are dropped")
        self._drop_many(reason, len(events))
        return 0.0, [], None

    def _read_results(
        self, events: list[bytes], results: list[Any], retry_after: float
    ) -> tuple[float, list[bytes], str | None]:
        retry: list[bytes] = []
        wait = 0.0
        failed: str | None = None
        for index, event in enumerate(events):
            result = results[index] if index < len(results) and isinstance(results[index], dict) else {}
            status = _int(result.get("httpStatus"))
            reason = str(result.get("reason") or "")
            if status == 202:
                self._bump("duplicates" if result.get("duplicate") else "accepted")
            elif status == 429:
                retry.append(event)
                wait = max(wait, float(result.get("retryAfterSeconds") or retry_after or 1.0))
            elif status >= 500 or status == 0:
                retry.append(event)
                failed = "server_error"
            else:
                if status == 402 and reason == "plan_limit_reached":
                    self._pause(reason)
                if reason == "invalid_payload":
                    for error in result.get("errors") or []:
                        field = error.get("field") if isinstance(error, dict) else None
                        message = error.get("message") if isinstance(error, dict) else None
                        self._log_once(f"field:{field}", "opsmeter ingest rejected field %r: %s", field, message)
                self._drop(reason or f"http_{status}")
        return wait, retry, failed

    def _learn_models(self, events: list[bytes], results: list[Any]) -> None:
        """Each answer's ``modelNormalized``: the gateway's name for the model its record was sent with, which
        model-scoped budgets are matched by (enforcement only)."""
        if not self.policy.enabled:
            return
        for position, result in enumerate(results):
            if not isinstance(result, dict) or not isinstance(said := result.get("modelNormalized"), str):
                continue
            index = result.get("index", position)
            if not isinstance(index, int) or not 0 <= index < len(events):
                continue
            try:
                record = json.loads(events[index])
            except ValueError:
                continue
            provider, model = record.get("provider"), record.get("model")
            if isinstance(provider, str) and isinstance(model, str):
                self.policy.models.said(provider, model, said)

    # --- flags, pause and counters -----------------------------------------------------------------------

    def _pause(self, reason: str) -> None:
        if reason != "plan_limit_reached" or self._paused_at is not None:
            return
        self._paused_at = self._last_status_check = time.monotonic()
        flags = self._flags
        self._update_flags(
            WorkspaceFlags(
                budget_warning=flags.budget_warning,
                budget_exceeded=flags.budget_exceeded,
                telemetry_paused=True,
                plan_limit_reached=True,
                policy_mode=flags.policy_mode,
                reason=reason,
            )
        )

    def _update_flags(self, new: WorkspaceFlags, *, answer: bool = False) -> None:
        old = self._flags
        if self._paused_at is not None and answer:
            new = WorkspaceFlags(
                new.budget_warning, new.budget_exceeded, True, True, new.policy_mode, old.reason or new.reason
            )
        if self._paused_at is not None and not new.telemetry_paused and not answer:
            self._paused_at = None
        self._flags = new
        self._flags_at = time.monotonic()
        for name, callback in self._callbacks.items():
            if callback is not None and getattr(old, name) != getattr(new, name):
                try:
                    callback(new)
                except Exception as exc:
                    self._log_once(f"callback:{name}", "opsmeter %s callback raised: %r", name, exc)

    def _bump(self, name: str, by: int = 1) -> None:
        with self._cond:
            self._counters[name] += by

    def _drop(self, reason: str) -> None:
        with self._cond:
            self._drop_locked(reason)

    def _drop_many(self, reason: str, count: int) -> None:
        with self._cond:
            self._dropped[reason] = self._dropped.get(reason, 0) + count

    def _drop_locked(self, reason: str) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        log.warning(message, *args)


def _config_problem(api_key: str, urls: list[str | None]) -> str | None:
    """What is wrong with the key or a URL, so that no request could ever be sent; None when nothing is."""
    if not isinstance(api_key, str) or not all(32 < ord(char) < 127 for char in api_key):
        return "the API key has characters an HTTP header cannot carry"
    for url in urls:
        if url is None:
            continue
        try:
            parsed = httpx.URL(url)
        except Exception:
            return f"{url!r} is not a URL"
        if parsed.scheme not in ("http", "https") or not parsed.host:
            return f"{url!r} is not an http(s) URL"
    return None


def _ssl_context() -> ssl.SSLContext | bool:
    """Made once, on the caller's thread: a sender (or a forked child's new one) never builds one, so a fork
    cannot catch it inside OpenSSL's locks."""
    try:
        return httpx.create_ssl_context()
    except Exception:
        return True


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _json(answer: httpx.Response) -> dict[str, Any] | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
