"""Ingest benchmark: the full gateway path (single events and batches) against a bare FastAPI endpoint.

Run with ``make bench`` (``.venv/bin/python bench/ingest_bench.py --write docs/benchmarks.md``).

* B, "baseline": a bare FastAPI app (below) that parses the same body into a pydantic model and
  answers 202, served by uvicorn (uvloop + httptools, one worker) in a child process; measured first
  and again after A, D and C (A is compared with the mean of the two).
* A, "full path": the whole local stack (Tansu broker, Redis, the five services) on free ports in a
  temporary data dir; ``POST /v1/ingest/llm-request`` with ``X-API-Key`` through the real gateway
  (one uvicorn worker, like B: key lookup, strict validation, one Redis admission script, pricing,
  Kafka publish with ``acks=all``). Its peak requests/s sets the offered rate of D.
* D, "latency at half the full path's peak", right after A: the full path again at a fixed offered
  rate of half A's requests/s, open loop (requests are scheduled at fixed intervals whatever the
  answers; latency is counted from the scheduled time, so a stall is not hidden by the generator).
* C, "batch", right after D: ``POST /v1/ingest/llm-requests`` with batches of 100 events on 16
  connections (with 8, the gateway waited on Redis and the broker 8-13 % of the time: not its peak;
  with 16 it is busy all the time, as in A); events/s counted from the ``accepted`` field of the 207
  answers. C runs in slices (``--rounds`` 5 of ``--slice`` 4 s) alternating with slices of single
  events ("A again", on a workspace of its own), and batches are compared with those: the machine's
  speed drifts within seconds on shared hosts, so only figures measured side by side compare fairly.
  (Each slice is a closed-loop run, which loses the work in flight when it stops: a batch's latency,
  ~0.1 s, against ~0.03 s for single events. In 2-s slices that understated batches by ~3.5 %.)
* E: A again with the consumers running beside the gateway (they are paused during A, D and C).

A, C, D and E each use their own enterprise workspace (rate limit 1,000,000/min, the admin API's
most), so one phase's minute window never throttles the next; after the phases the bench waits
until reporting's usage API counts every event each phase got accepted. A, B, C and E use the same
closed-loop generator, connections, warm-up and duration: ``wrk`` when it is on PATH (a Lua script
gives every event a unique ``externalRequestId`` and counts the accepted ones), else a small
keep-alive HTTP/1.1 client on asyncio streams in this process; on a 2-core machine the Python client
is itself a bottleneck, so its figures are a floor. D always uses the Python client (wrk cannot hold
a fixed rate). Every request goes to 127.0.0.1; every loop is bounded in time and in count.
"""

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import resource
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from report import write_section

from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY

INGEST_PATH = "/v1/ingest/llm-request"
BATCH_PATH = "/v1/ingest/llm-requests"
HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent
BATCH_SIZE = 100
SLICE_PAUSE_S = 0.5
"""Between interleaved slices: what the previous slice left in flight is not measured in the next."""
OPEN_LOOP_TIMEOUT_S = 5.0

# The acceptance targets (issue 3): the verdict lines at the top of the section.
TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
TARGET_BATCH_GAIN = 10.0

# SPEC §5's example body; externalRequestId is replaced per event.
EXAMPLE_BODY: dict[str, Any] = dict(SPEC_EXAMPLE_BODY)
ID_MARKER = "@@ID@@"

# The most the admin API accepts for rateLimitPerMinute (CreateWorkspaceBody: le=1_000_000).
WORKSPACE_BODY: dict[str, Any] = {
    "name": "bench",
    "plan": "enterprise",
    "rateLimitPerMinute": 1_000_000,
    "monthlyRequestQuota": 1_000_000_000,
}


def body_parts() -> tuple[bytes, bytes]:
    """The example body serialised once, split around the externalRequestId value."""
    text = json.dumps({**EXAMPLE_BODY, "externalRequestId": ID_MARKER}, separators=(",", ":"))
    before, after = text.split(ID_MARKER)
    return before.encode(), after.encode()


@dataclass(frozen=True)
class Target:
    """What one load test sends: the path, events per request (0: a single event), the answer expected."""

    path: str
    batch: int
    expected_status: int

    @property
    def events_per_request(self) -> int:
        return max(1, self.batch)


SINGLE = Target(INGEST_PATH, 0, 202)
BATCH = Target(BATCH_PATH, BATCH_SIZE, 207)


# --------------------------------------------------------------------------- baseline app (test B)


class LlmRequestBody(BaseModel):
    """The §5 fields the example body uses, with the same bounds; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel)

    external_request_id: str = Field(min_length=1, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=128)
    endpoint_tag: str | None = Field(default=None, max_length=128)
    prompt_version: str | None = Field(default=None, max_length=64)
    user_id: str | None = Field(default=None, max_length=128)
    input_tokens: int = Field(ge=0, le=10_000_000)
    output_tokens: int = Field(ge=0, le=10_000_000)
    latency_ms: int | None = Field(default=None, ge=0, le=3_600_000)
    status: Literal["success", "error"] = "success"


def baseline_app() -> FastAPI:
    app = FastAPI(title="bench baseline", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post(INGEST_PATH, status_code=202)
    async def ingest(body: LlmRequestBody) -> dict[str, Any]:
        return {"status": "accepted", "reason": None, "externalRequestId": body.external_request_id}

    return app


def serve_baseline(port: int) -> None:
    import gc

    import uvicorn

    from opsmeter_ingest.bootstrap import GC_THRESHOLDS

    app = baseline_app()
    # The same process settings as the gateway (opsmeter_ingest.bootstrap), so only the work differs.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    uvicorn.run(
        app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


# --------------------------------------------------------------------------- results


@dataclass
class LoadResult:
    name: str
    generator: str
    duration_s: float
    sent: int
    accepted: int
    other_status: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    events: int = 0
    rejected_events: int = 0
    events_per_request: int = 1
    offered_rate: float = 0.0
    send_p50_ms: float = 0.0
    send_p99_ms: float = 0.0
    generator_cpu_s: float = 0.0
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    window_p99_ms: list[float] = field(default_factory=list)
    """Open loop: the p99 of the requests due in each window of ``WINDOW_S`` seconds, in order."""
    slow_bursts: list[int] = field(default_factory=list)
    """Open loop: the slowest 1 % of due requests, grouped into bursts (due less than ``BURST_GAP_S`` apart);
    the size of each burst, largest first."""

    @property
    def rate(self) -> float:
        """Requests per second answered as expected (202 single, 207 batch)."""
        return self.accepted / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def event_rate(self) -> float:
        """Events per second accepted."""
        return self.events / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.other_status + self.socket_errors

    @property
    def unanswered(self) -> int:
        """Requests written without a status read back (cut off at the end, or timed out)."""
        return max(0, self.sent - self.accepted - self.other_status)


def combined(name: str, slices: list[LoadResult]) -> LoadResult:
    """Several runs of one kind as one: counts, durations and CPU summed; latency from the slowest run.

    (Percentiles of separate runs do not merge exactly: p50, p99 and max are the highest of the runs, the
    mean is weighted by answered requests.)"""
    answered = sum(r.accepted for r in slices) or 1
    cpu: dict[str, float] = {}
    for r in slices:
        for k, v in r.server_cpu_s.items():
            cpu[k] = cpu.get(k, 0.0) + v
    first = slices[0]
    return LoadResult(
        name=name,
        generator=first.generator,
        duration_s=sum(r.duration_s for r in slices),
        sent=sum(r.sent for r in slices),
        accepted=sum(r.accepted for r in slices),
        other_status=sum(r.other_status for r in slices),
        socket_errors=sum(r.socket_errors for r in slices),
        p50_ms=max(r.p50_ms for r in slices),
        p99_ms=max(r.p99_ms for r in slices),
        mean_ms=sum(r.mean_ms * r.accepted for r in slices) / answered,
        max_ms=max(r.max_ms for r in slices),
        events=sum(r.events for r in slices),
        rejected_events=sum(r.rejected_events for r in slices),
        events_per_request=first.events_per_request,
        generator_cpu_s=sum(r.generator_cpu_s for r in slices),
        server_cpu_s=cpu,
    )


@dataclass
class Arrival:
    expected_min: int
    expected_max: int
    counted: int
    waited_s: float

    @property
    def matches(self) -> bool:
        return self.expected_min <= self.counted <= self.expected_max

    def __add__(self, other: "Arrival") -> "Arrival":
        return Arrival(
            self.expected_min + other.expected_min,
            self.expected_max + other.expected_max,
            self.counted + other.counted,
            self.waited_s + other.waited_s,
        )


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --------------------------------------------------------------------------- wrk


WRK_SCRIPT = string.Template(
    """
-- generated by bench/ingest_bench.py: unique externalRequestId per event, counts accepted events
local body_before = [[$before]]
local body_after = [[$after]]
local batch = $batch
local expected = $expected
local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  run_prefix = args[1] or "run"
  sent = 0
  accepted = 0
  other = 0
  events = 0
  rejected = 0
  wrk.headers["Content-Type"] = "application/json"
  $auth
end

function request()
  sent = sent + 1
  local id = run_prefix .. "-" .. tid .. "-" .. sent
  local body
  if batch == 0 then
    body = body_before .. id .. body_after
  else
    local parts = {}
    for j = 1, batch do
      parts[j] = body_before .. id .. "-" .. j .. body_after
    end
    body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  end
  return wrk.format("POST", "$path", nil, body)
end

function response(status, headers, body)
  if status == expected then
    accepted = accepted + 1
    if batch == 0 then
      events = events + 1
    else
      events = events + (tonumber(string.match(body, '"accepted":(%d+)')) or 0)
      rejected = rejected + (tonumber(string.match(body, '"rejected":(%d+)')) or 0)
    end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local s, a, o, ev, rj = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent")
    a = a + t:get("accepted")
    o = o + t:get("other")
    ev = ev + t:get("events")
    rj = rj + t:get("rejected")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\\"sent\\":%.0f,\\"accepted\\":%.0f,\\"other\\":%.0f,\\"events\\":%.0f,\\"rejected\\":%.0f," ..
    "\\"duration_us\\":%.0f,\\"p50_us\\":%.1f,\\"p99_us\\":%.1f,\\"mean_us\\":%.1f,\\"max_us\\":%.1f," ..
    "\\"connect\\":%.0f,\\"read\\":%.0f,\\"write\\":%.0f,\\"timeout\\":%.0f}\\n",
    s, a, o, ev, rj, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.timeout))
end
"""
)


def write_wrk_script(path: Path, api_key: str | None, target: Target) -> Path:
    before, after = body_parts()
    auth = f'wrk.headers["X-API-Key"] = "{api_key}"' if api_key else ""
    for part in (before, after):
        if b"]]" in part:
            raise ValueError("the body cannot be embedded in a Lua long string")
    path.write_text(
        WRK_SCRIPT.substitute(
            before=before.decode(),
            after=after.decode(),
            auth=auth,
            path=target.path,
            batch=target.batch,
            expected=target.expected_status,
        )
    )
    path.chmod(0o600)
    return path


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright", 1)[0].strip() if first else "wrk"


def run_wrk(
    wrk: str,
    *,
    name: str,
    port: int,
    target: Target,
    script: Path,
    prefix: str,
    connections: int,
    threads: int,
    duration: float,
) -> LoadResult:
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{target.path}",
        "--",
        prefix,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    r = json.loads(line.removeprefix("BENCH_JSON "))
    return LoadResult(
        name=name,
        generator="wrk",
        duration_s=r["duration_us"] / 1e6,
        sent=int(r["sent"]),
        accepted=int(r["accepted"]),
        other_status=int(r["other"]),
        socket_errors=int(r["connect"] + r["read"] + r["write"] + r["timeout"]),
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        mean_ms=r["mean_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        events=int(r["events"]),
        rejected_events=int(r["rejected"]),
        events_per_request=target.events_per_request,
        generator_cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


# --------------------------------------------------------------------------- Python generator


@dataclass
class _Tally:
    sent: int = 0
    accepted: int = 0
    other: int = 0
    socket_errors: int = 0
    events: int = 0
    rejected_events: int = 0
    budget: int = 0
    latencies: list[float] = field(default_factory=list)
    send_latencies: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)
    """Open loop: when each answered request was due (seconds from the start of its tally), as ``latencies``."""

    def count(self, target: Target, status: int, body: bytes) -> None:
        """Tally one answer; a batch's 207 is parsed and its ``accepted``/``rejected`` fields summed."""
        if status != target.expected_status:
            self.other += 1
            return
        if target.batch == 0:
            self.accepted += 1
            self.events += 1
            return
        try:
            answer = json.loads(body)
            accepted, rejected = int(answer["accepted"]), int(answer["rejected"])
        except (ValueError, KeyError, TypeError):
            self.other += 1
            return
        self.accepted += 1
        self.events += accepted
        self.rejected_events += rejected


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """Read one HTTP/1.1 response; return its status, whether the connection stays open, and the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for raw in lines[1:]:
        if b":" in raw:
            key, value = raw.split(b":", 1)
            headers[key.strip().lower()] = value.strip().lower()
    keep_alive = headers.get(b"connection") != b"close"
    body = b""
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        chunks: list[bytes] = []
        for _ in range(100_000):
            size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.read()
        keep_alive = False
    return status, keep_alive, body


_STREAM_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class _Requests:
    """Request bytes for one run: the head once, a body with fresh externalRequestIds per call."""

    def __init__(self, port: int, api_key: str | None, target: Target, prefix: str) -> None:
        self.port = port
        self.target = target
        self._before, self._after = body_parts()
        self._run = prefix.encode()
        self._n = 0
        self._head = (
            f"POST {target.path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            + (f"X-API-Key: {api_key}\r\n" if api_key else "")
            + "Content-Length: %d\r\n\r\n"
        ).encode()

    def next(self) -> bytes:
        self._n += 1
        event_id = self._run + b"-" + str(self._n).encode()
        if self.target.batch == 0:
            body = self._before + event_id + self._after
        else:
            body = (
                b'{"events":['
                + b",".join(
                    self._before + event_id + b"-" + str(j).encode() + self._after
                    for j in range(1, self.target.batch + 1)
                )
                + b"]}"
            )
        return self._head % len(body) + body


async def _connection(requests: _Requests, deadline: float, tally: _Tally, limit_s: float) -> None:
    """Closed loop: one request at a time on one keep-alive connection until the deadline or the budget."""
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    try:
        while time.monotonic() < deadline and tally.budget > 0:
            if writer is None or reader is None:
                try:
                    async with asyncio.timeout(limit_s):
                        reader, writer = await asyncio.open_connection(HOST, requests.port)
                except (OSError, TimeoutError):
                    tally.socket_errors += 1
                    await asyncio.sleep(0.05)
                    continue
            tally.budget -= 1
            payload = requests.next()
            started = time.perf_counter()
            tally.sent += 1
            try:
                async with asyncio.timeout(limit_s):
                    writer.write(payload)
                    status, keep_alive, body = await _read_response(reader)
            except _STREAM_ERRORS:
                tally.socket_errors += 1
                writer.close()
                writer = reader = None
                continue
            tally.latencies.append(time.perf_counter() - started)
            tally.count(requests.target, status, body)
            if not keep_alive:
                writer.close()
                writer = reader = None
    finally:
        if writer is not None:
            writer.close()


async def _python_load(
    requests: _Requests, connections: int, duration: float, max_requests: int
) -> tuple[_Tally, float]:
    tally = _Tally(budget=max_requests)
    started = time.monotonic()
    deadline = started + duration
    await asyncio.gather(*(_connection(requests, deadline, tally, 5.0) for _ in range(connections)))
    return tally, time.monotonic() - started


async def _open_loop(
    requests: _Requests,
    *,
    rate: float,
    warmup: float,
    duration: float,
    connections: int,
    limit_s: float,
    server_pids: dict[str, int],
    cpu: dict[str, float],
) -> tuple[_Tally, _Tally]:
    """Open loop: request i is due at ``start + i / rate``, sent by the first free connection.

    Connections are opened before the clock starts. Latency is counted from the scheduled time (so a
    request that waited for a free connection, or for the scheduler, carries that wait), and also from
    the moment it was written (``send_latencies``). Requests due in the first ``warmup`` seconds are
    tallied apart and not measured. ``cpu`` gets the CPU-seconds of the measured window only (servers,
    ``*machine`` and ``*generator``, this process).
    """
    warm, measured = _Tally(), _Tally()
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = []
    for _ in range(connections):
        try:
            async with asyncio.timeout(limit_s):
                streams.append(await asyncio.open_connection(HOST, requests.port))
        except (OSError, TimeoutError):
            warm.socket_errors += 1
            streams.append(None)
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    start = time.perf_counter() + 0.05
    cutoff = start + warmup
    total = int(rate * (warmup + duration))

    async def worker(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        reader, writer = stream if stream is not None else (None, None)
        try:
            for _ in range(total + 1):
                scheduled = await queue.get()
                if scheduled is None:
                    return
                tally = measured if scheduled >= cutoff else warm
                if writer is None or reader is None:
                    try:
                        async with asyncio.timeout(limit_s):
                            reader, writer = await asyncio.open_connection(HOST, requests.port)
                    except (OSError, TimeoutError):
                        tally.sent += 1
                        tally.socket_errors += 1
                        continue
                payload = requests.next()
                sent_at = time.perf_counter()
                tally.sent += 1
                try:
                    async with asyncio.timeout(limit_s):
                        writer.write(payload)
                        status, keep_alive, body = await _read_response(reader)
                except _STREAM_ERRORS:
                    tally.socket_errors += 1
                    writer.close()
                    reader = writer = None
                    continue
                answered = time.perf_counter()
                tally.latencies.append(answered - scheduled)
                tally.due.append(scheduled - (cutoff if tally is measured else start))
                tally.send_latencies.append(answered - sent_at)
                tally.count(requests.target, status, body)
                if not keep_alive:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    async def meter() -> None:
        await asyncio.sleep(max(0.0, cutoff - time.perf_counter()))
        before = cpu_snapshot(server_pids)
        await asyncio.sleep(max(0.0, cutoff + duration - time.perf_counter()))
        after = cpu_snapshot(server_pids)
        cpu.update({k: after[k] - before[k] for k in after})

    workers = [asyncio.create_task(worker(stream)) for stream in streams]
    metering = asyncio.create_task(meter())
    issued = 0
    while issued < total:
        due = min(total, int((time.perf_counter() - start) * rate // 1) + 1)
        while issued < due:
            queue.put_nowait(start + issued / rate)
            issued += 1
        if issued < total:
            await asyncio.sleep(max(0.0, start + issued / rate - time.perf_counter()))
    await metering
    for _ in workers:
        queue.put_nowait(None)
    # Bounded: every request has limit_s to answer; a backlog still queued then is cut off (unanswered).
    _, pending = await asyncio.wait(workers, timeout=limit_s + 2.0)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    while not queue.empty():
        if queue.get_nowait() is not None:
            measured.sent += 1  # due but never written: it counts as unanswered
    return warm, measured


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


WINDOW_S = 10.0
"""D: the p99 is also given per window of this many seconds, so a reader sees whether the tail is spread
over the run or comes from one part of it."""
BURST_GAP_S = 0.02
"""D: slow requests due less than this far apart count as one burst (one stall of the machine or the server)."""


def timeline(due: list[float], latencies: list[float]) -> tuple[list[float], list[int]]:
    """The p99 (ms) of each ``WINDOW_S`` window of due time, and the bursts of the slowest 1 %, largest first.

    ``due[i]`` is when the request of ``latencies[i]`` was due. A tail made of a few large bursts comes from
    stalls; one spread over many small ones comes from the server's steady load.
    """
    if not due:
        return [], []
    windows: dict[int, list[float]] = {}
    for at, latency in zip(due, latencies, strict=True):
        windows.setdefault(int(at // WINDOW_S), []).append(latency)
    per_window = [percentile(sorted(v), 99) * 1000 for _, v in sorted(windows.items())]
    slow = max(1, len(latencies) // 100)
    slowest = sorted(due[i] for i in sorted(range(len(latencies)), key=latencies.__getitem__)[-slow:])
    bursts = [1]
    for previous, current in itertools.pairwise(slowest):
        if current - previous < BURST_GAP_S:
            bursts[-1] += 1
        else:
            bursts.append(1)
    return per_window, sorted(bursts, reverse=True)


def _result(
    name: str, target: Target, tally: _Tally, elapsed: float, cpu_s: float, *, open_loop: bool = False
) -> LoadResult:
    latencies = sorted(tally.latencies)
    if open_loop:
        # A request due but never answered (timed out, failed, or still queued at the end) has no latency
        # to record; it counts as slower than any answer, so it cannot flatter the percentiles.
        latencies += [math.inf] * (tally.sent - tally.accepted - tally.other)
    sends = sorted(tally.send_latencies)
    per_window, bursts = timeline(tally.due, tally.latencies) if open_loop else ([], [])
    return LoadResult(
        name=name,
        generator="python",
        duration_s=elapsed,
        sent=tally.sent,
        accepted=tally.accepted,
        other_status=tally.other,
        socket_errors=tally.socket_errors,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        mean_ms=(math.fsum(latencies) / len(latencies) * 1000) if latencies else 0.0,
        max_ms=(latencies[-1] * 1000) if latencies else 0.0,
        events=tally.events,
        rejected_events=tally.rejected_events,
        events_per_request=target.events_per_request,
        send_p50_ms=percentile(sends, 50) * 1000,
        send_p99_ms=percentile(sends, 99) * 1000,
        generator_cpu_s=cpu_s,
        window_p99_ms=per_window,
        slow_bursts=bursts,
    )


def run_python(
    *,
    name: str,
    port: int,
    api_key: str | None,
    target: Target,
    prefix: str,
    connections: int,
    duration: float,
    max_requests: int,
) -> LoadResult:
    requests = _Requests(port, api_key, target, prefix)
    cpu_before = time.process_time()
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        tally, elapsed = runner.run(_python_load(requests, connections, duration, max_requests))
    return _result(name, target, tally, elapsed, time.process_time() - cpu_before)


def run_fixed_rate(
    *,
    name: str,
    port: int,
    api_key: str | None,
    prefix: str,
    rate: float,
    warmup: float,
    duration: float,
    connections: int,
    server_pids: dict[str, int],
) -> tuple[LoadResult, LoadResult]:
    """D: the open-loop run; returns (warm-up, measured). CPU is metered over the whole run."""
    requests = _Requests(port, api_key, SINGLE, prefix)
    cpu: dict[str, float] = {}
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        warm_tally, tally = runner.run(
            _open_loop(
                requests,
                rate=rate,
                warmup=warmup,
                duration=duration,
                connections=connections,
                limit_s=OPEN_LOOP_TIMEOUT_S,
                server_pids=server_pids,
                cpu=cpu,
            )
        )
    warm = _result(name, SINGLE, warm_tally, warmup, 0.0, open_loop=True)
    measured = _result(name, SINGLE, tally, duration, cpu.pop("*generator", 0.0), open_loop=True)
    measured.offered_rate = rate
    measured.server_cpu_s = cpu
    return warm, measured


# --------------------------------------------------------------------------- helpers


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (0.0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_seconds() -> dict[str, float]:
    """CPU-seconds since boot from ``/proc/stat`` ({} without it): ``*machine``, what all cores spent busy (user,
    nice, system, irq, softirq), and ``*steal``, what the hypervisor gave to other guests while this machine's
    virtual CPUs wanted to run, in all and per core (``*steal:cpu0``, …)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    times: dict[str, float] = {}
    for line in lines:
        name, *fields = line.split()
        if not name.startswith("cpu") or len(fields) < 8:
            continue
        try:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
        except ValueError:
            continue
        if name == "cpu":
            times["*machine"] = (user + nice + system + irq + softirq) / tick
            times["*steal"] = steal / tick
        else:
            times[f"*steal:{name}"] = steal / tick
    return times


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU-seconds so far of each process, of the whole machine (``*machine``) and of this one (``*generator``)."""
    snapshot = {name: cpu_seconds(pid) for name, pid in pids.items()}
    snapshot.update(machine_seconds())
    snapshot["*generator"] = time.process_time()
    return snapshot


@contextlib.contextmanager
def cpu_meter(pids: dict[str, int], into: dict[str, float]) -> Iterator[None]:
    """Per-process CPU-seconds over the block, plus ``*machine`` (every process, all cores)."""
    before = cpu_snapshot(pids)
    yield
    after = cpu_snapshot(pids)
    into.update({k: after[k] - before.get(k, 0.0) for k in after if k != "*generator"})


@dataclass(frozen=True)
class Placement:
    """Which cores the server under test gets, and which everything else shares (SPEC §3's setup)."""

    server: frozenset[int]
    rest: frozenset[int]

    @classmethod
    def choose(cls) -> "Placement | None":
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(usable) < 2:
            return None
        return cls(frozenset(usable[:1]), frozenset(usable[1:]))

    @staticmethod
    def pin(pid: int, cpus: frozenset[int]) -> None:
        """Every thread of ``pid`` (and what it starts later) onto ``cpus``."""
        tasks = Path(f"/proc/{pid}/task")
        for tid in [int(t.name) for t in tasks.iterdir()] if tasks.exists() else [pid]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.sched_setaffinity(tid, cpus)

    def describe(self) -> str:
        return f"CPU {','.join(map(str, sorted(self.server)))} vs CPU {','.join(map(str, sorted(self.rest)))}"


@contextlib.contextmanager
def paused(pids: dict[str, int]) -> Iterator[None]:
    """SIGSTOP the given processes for the block (they catch up afterwards), SIGCONT after."""
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def http_json(
    method: str, url: str, headers: dict[str, str], body: dict[str, Any] | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status), json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except json.JSONDecodeError:
            return exc.code, {"raw": text.decode(errors="replace")}


def check_accepts(port: int, api_key: str | None, target: Target = SINGLE) -> int:
    """One request before the load, so a wrong key or body fails loudly instead of as 100% errors.

    Returns the number of events it got accepted (1 single, 2 for a batch of two).
    """
    headers = {"X-API-Key": api_key} if api_key else {}
    check = f"bench-check-{uuid.uuid4().hex}"
    if target.batch == 0:
        body: dict[str, Any] = {**EXAMPLE_BODY, "externalRequestId": check}
        want = 1
    else:
        body = {"events": [{**EXAMPLE_BODY, "externalRequestId": f"{check}-{j}"} for j in (1, 2)]}
        want = 2
    status, answer = http_json("POST", f"http://{HOST}:{port}{target.path}", headers, body)
    if status != target.expected_status or (target.batch and answer.get("accepted") != want):
        raise RuntimeError(f"{HOST}:{port}{target.path} answered {status}: {answer}")
    return want


def usage_count(reporting: str, workspace_id: str, admin_token: str) -> int:
    status, answer = http_json(
        "GET",
        f"{reporting}/v1/workspaces/{workspace_id}/usage?groupBy=day",
        {"Authorization": f"Bearer {admin_token}"},
    )
    if status != 200:
        raise RuntimeError(f"usage answered {status}: {answer}")
    return int(answer["totals"]["requests"])


def wait_for_arrival(
    reporting: str, workspace_id: str, admin_token: str, *, expected_min: int, expected_max: int, timeout: float
) -> Arrival:
    """Poll reporting until at least ``expected_min`` events are counted and the count holds still.

    It gives up after ``timeout`` seconds without progress (the count not rising), or after ten times that
    in all: a consumer still catching up on a large phase is waited for, a stuck one is not.
    """
    started = time.monotonic()
    hard_deadline = started + 10 * timeout
    stalled_since = started
    counted, previous = -1, -2
    while time.monotonic() < min(hard_deadline, stalled_since + timeout):
        counted = usage_count(reporting, workspace_id, admin_token)
        if counted >= expected_min and counted == previous:
            break
        if counted > previous:
            stalled_since = time.monotonic()
        previous = counted
        time.sleep(1.0 if counted >= expected_min else 0.5)
    return Arrival(expected_min, expected_max, counted, time.monotonic() - started)


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    os_name = platform.system()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical ({usable} usable)",
        "ram": ram,
        "python": platform.python_version(),
        "os": f"{os_name}, kernel {platform.release()}",
        "commit": commit or "unknown",
    }


CALIBRATION = """
import json, os, sys, time
from opsmeter_ingest.domain import parse_fast
os.sched_setaffinity(0, {int(sys.argv[1])})
body = sys.stdin.buffer.read()
def median(gap, n=300):
    times = []
    for _ in range(n):
        if gap:
            time.sleep(gap)
        t = time.perf_counter()
        parse_fast(body, batch=False)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[n // 2] * 1e6
median(0, 50)
print(json.dumps({"hot": median(0), "after_1ms": median(0.001), "after_5ms": median(0.005)}))
"""


def cache_calibration(placement: "Placement | None") -> dict[str, float] | None:
    """The gateway's own parse of the example body, back to back and after idle gaps, on the server's core.

    On a shared host, neighbours evict a core's caches within milliseconds: requests that arrive spaced
    out (D) then cost several times what they cost back to back (A, C). This shows how strongly, at the
    time of the run, since it changes from one run to the next.
    """
    cpu = min(placement.server) if placement is not None else 0
    before, after = body_parts()
    with contextlib.suppress(subprocess.SubprocessError, OSError, ValueError):
        done = subprocess.run(
            [sys.executable, "-c", CALIBRATION, str(cpu)],
            input=before + b"calibration" + after,
            capture_output=True,
            check=True,
            timeout=60,
        )
        figures: dict[str, float] = json.loads(done.stdout)
        return figures
    return None


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for package in ("fastapi", "pydantic", "uvicorn", "uvloop", "httptools", "aiokafka", "redis"):
        with contextlib.suppress(PackageNotFoundError):
            parts.append(f"{package} {version(package)}")
    return ", ".join(parts)


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the run


@dataclass
class Settings:
    generator: Literal["wrk", "python"]
    generator_label: str
    wrk_path: str
    connections: int
    threads: int
    duration: float
    warmup: float
    max_requests: int
    verify_timeout: float
    rate_connections: int
    batch_connections: int
    rate_duration: float = 30.0
    """D: measured seconds. Its p99 is a tail over all of them: in 10 s, one stall of the host of a few
    hundred milliseconds decides it (ADR 45)."""
    rounds: int = 5
    """C and A again: alternating slices of each."""
    slice_s: float = 4.0
    """Seconds of each slice: a closed-loop run loses the work still in flight when it stops (a batch's
    latency, ~0.1 s, against ~0.03 s for a single event), so short slices understate batches."""


@dataclass
class Phase:
    """One load test with its warm-up and the arrival check of the events it got accepted."""

    warm: LoadResult
    measured: LoadResult
    arrival: Arrival | None = None


@dataclass
class Report:
    settings: Settings
    full: Phase
    baseline: Phase
    fixed: Phase
    batch: Phase
    shared: Phase
    baseline_after: Phase
    full_after: Phase
    """A again, in slices interleaved with C's: batches are compared with single events measured alongside."""
    rounds: list[tuple[LoadResult, LoadResult]]
    """The interleaved slices: (A, C) per round."""
    placement: "Placement | None"
    started_at: datetime
    load_at_start: tuple[float, float, float]
    wall_s: float
    stack_start_s: float
    machine: dict[str, str]
    calibration: tuple[dict[str, float] | None, dict[str, float] | None] = (None, None)
    """:func:`cache_calibration` before B and after E."""

    @property
    def arrival(self) -> Arrival:
        total = Arrival(0, 0, 0, 0.0)
        for phase in (self.full, self.shared, self.fixed, self.batch, self.full_after):
            if phase.arrival is not None:
                total = total + phase.arrival
        return total

    @property
    def arrivals_match(self) -> bool:
        return all(
            p.arrival is not None and p.arrival.matches
            for p in (self.full, self.shared, self.fixed, self.batch, self.full_after)
        )


@dataclass(frozen=True)
class Workspace:
    workspace_id: str
    api_key: str
    admin_token: str


class Load:
    """Runs one warm-up and one measurement against a port with the chosen closed-loop generator."""

    def __init__(self, settings: Settings, work_dir: Path) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.run_id = uuid.uuid4().hex[:8]

    def prefix(self, tag: str) -> str:
        return f"bench-{self.run_id}-{tag}"

    def run(self, name: str, port: int, api_key: str | None, target: Target, duration: float, tag: str) -> LoadResult:
        s = self.settings
        connections = s.batch_connections if target.batch else s.connections
        if s.generator == "wrk":
            script = write_wrk_script(self.work_dir / f"wrk-{tag}.lua", api_key, target)
            return run_wrk(
                s.wrk_path,
                name=name,
                port=port,
                target=target,
                script=script,
                prefix=self.prefix(tag),
                connections=connections,
                threads=min(s.threads, connections),
                duration=duration,
            )
        return run_python(
            name=name,
            port=port,
            api_key=api_key,
            target=target,
            prefix=self.prefix(tag),
            connections=connections,
            duration=duration,
            max_requests=s.max_requests,
        )

    def warm_and_measure(
        self, name: str, port: int, api_key: str | None, target: Target, server_pids: dict[str, int]
    ) -> Phase:
        tag = name.split()[0] + ("2" if name.endswith("again") else "")  # unique ids per run
        say(f"{name}: warm-up {self.settings.warmup:g}s")
        warm = self.run(name, port, api_key, target, self.settings.warmup, f"{tag}-warm")
        say(f"{name}: measuring {self.settings.duration:g}s")
        cpu: dict[str, float] = {}
        with cpu_meter(server_pids, cpu):
            measured = self.run(name, port, api_key, target, self.settings.duration, f"{tag}-run")
        measured.server_cpu_s = cpu
        say(
            f"{name}: {measured.rate:,.0f} requests/s, {measured.event_rate:,.0f} events/s, "
            f"p50 {measured.p50_ms:.2f} ms, p99 {measured.p99_ms:.2f} ms, errors {measured.errors}, "
            f"rejected events {measured.rejected_events}"
        )
        return Phase(warm, measured)

    def interleaved(
        self,
        single: tuple[str, str],
        batch: tuple[str, str],
        port: int,
        server_pids: dict[str, int],
        rounds: int,
    ) -> tuple[Phase, Phase, list[tuple[LoadResult, LoadResult]]]:
        """Single events and batches in alternating slices (``rounds`` of each, ``slice_s`` seconds each),
        so both see the same machine: its speed drifts within seconds on shared hosts."""
        (single_name, single_key), (batch_name, batch_key) = single, batch
        slice_s = self.settings.slice_s
        say(f"{single_name} / {batch_name}: warm-up {self.settings.warmup:g}s each")
        warm_a = self.run(single_name, port, single_key, SINGLE, self.settings.warmup, "A2-warm")
        warm_c = self.run(batch_name, port, batch_key, BATCH, self.settings.warmup, "C-warm")
        pairs: list[tuple[LoadResult, LoadResult]] = []
        for i in range(rounds):
            measured: list[LoadResult] = []
            for name, key, target, tag in (
                (single_name, single_key, SINGLE, "A2"),
                (batch_name, batch_key, BATCH, "C"),
            ):
                time.sleep(SLICE_PAUSE_S)  # what the last slice left in flight finishes before this one starts
                cpu: dict[str, float] = {}
                with cpu_meter(server_pids, cpu):
                    result = self.run(name, port, key, target, slice_s, f"{tag}-run{i}")
                result.server_cpu_s = cpu
                measured.append(result)
            a, c = measured
            say(
                f"round {i + 1}/{rounds}: {a.event_rate:,.0f} single events/s, {c.event_rate:,.0f} batched events/s "
                f"({c.event_rate / a.event_rate if a.event_rate else 0:.1f}x)"
            )
            pairs.append((a, c))
        full = combined(single_name, [a for a, _ in pairs])
        batched = combined(batch_name, [c for _, c in pairs])
        return Phase(warm_a, full), Phase(warm_c, batched), pairs

    def fixed_rate(self, name: str, port: int, api_key: str, rate: float, server_pids: dict[str, int]) -> Phase:
        s = self.settings
        say(f"{name}: {rate:,.0f} requests/s offered, open loop: {s.warmup:g}s warm-up + {s.rate_duration:g}s measured")
        warm, measured = run_fixed_rate(
            name=name,
            port=port,
            api_key=api_key,
            prefix=self.prefix("D"),
            rate=rate,
            warmup=s.warmup,
            duration=s.rate_duration,
            connections=s.rate_connections,
            server_pids=server_pids,
        )
        say(
            f"{name}: achieved {measured.rate:,.0f} requests/s of {rate:,.0f}, p50 {_ms(measured.p50_ms)} ms, "
            f"p99 {_ms(measured.p99_ms)} ms, max {_ms(measured.max_ms, 1)} ms, errors {measured.errors}, "
            f"unanswered {measured.unanswered}; p99 per {WINDOW_S:g}s: "
            + _window_p99s(measured)
            + f" ms; the slowest 1 % in {len(measured.slow_bursts)} bursts"
        )
        return Phase(warm, measured)


def run_bench(settings: Settings) -> Report:
    from opsmeter_cli.stack import SERVICES, Stack, StackConfig, operator_token
    from opsmeter_runtime.localstack import ManagedProcess, free_port, port_open, wait_for

    started_at = datetime.now(UTC)
    load_at_start = os.getloadavg()
    machine_info = machine()  # before the bench pins itself to a core
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="opsmeter-bench-") as tmp:
        data_dir = Path(tmp)
        config = StackConfig(
            data_dir=data_dir / "data",
            broker_port=free_port(),
            redis_port=free_port(),
            service_ports={s.name: free_port() for s in SERVICES},
        )
        stack = Stack(config)
        baseline: ManagedProcess | None = None
        load = Load(settings, data_dir)
        try:
            say(f"starting the local stack in {config.data_dir}")
            t0 = time.monotonic()
            stack.start(on_step=say)
            stack_start_s = time.monotonic() - t0
            gateway, reporting = config.url("ingest-gateway"), config.url("reporting")

            def workspace(tag: str) -> Workspace:
                status, created = http_json(
                    "POST",
                    f"{gateway}/v1/admin/workspaces",
                    {"X-Operator-Token": operator_token(config)},
                    {**WORKSPACE_BODY, "name": f"bench-{tag}"},
                )
                if status != 201:
                    raise RuntimeError(f"creating the workspace answered {status}: {created}")
                say(f"workspace {created['workspaceId']} created for {tag}")
                ws = Workspace(created["workspaceId"], created["apiKey"], created["adminToken"])
                # Billing projects the plan (and its rate limit) asynchronously; measure only once it has.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    status, plan = http_json(
                        "GET",
                        f"{config.url('billing')}/v1/workspaces/{ws.workspace_id}/plan",
                        {"Authorization": f"Bearer {ws.admin_token}"},
                    )
                    if status == 200 and plan.get("planTier") == WORKSPACE_BODY["plan"]:
                        return ws
                    time.sleep(0.05)
                raise RuntimeError(f"billing did not project the plan of {ws.workspace_id} within 30 s")

            def arrived(ws: Workspace, checked: int, phase: Phase) -> Arrival:
                # Every accepted event of the phase (pre-check, warm-up, measurement) must reach reporting;
                # requests cut off at the end of a run may also have been accepted, so up to that many more.
                runs = (phase.warm, phase.measured)
                expected_min = checked + sum(r.events for r in runs)
                expected_max = expected_min + sum(r.unanswered * r.events_per_request for r in runs)
                say(f"waiting for reporting to count {expected_min:,} events (up to {settings.verify_timeout:g}s)")
                arrival = wait_for_arrival(
                    reporting,
                    ws.workspace_id,
                    ws.admin_token,
                    expected_min=expected_min,
                    expected_max=expected_max,
                    timeout=settings.verify_timeout,
                )
                verdict = "match" if arrival.matches else "MISMATCH"
                say(f"reporting counts {arrival.counted:,} events after {arrival.waited_s:.1f}s ({verdict})")
                return arrival

            ws_a, ws_e, ws_d, ws_c, ws_a2 = (workspace(tag) for tag in ("A", "E", "D", "C", "A2"))
            gateway_port = config.service_ports["ingest-gateway"]
            stack_pids = stack.pids()
            consumers = {k: v for k, v in stack_pids.items() if k not in ("ingest-gateway", "broker", "redis")}
            placement = Placement.choose()
            if placement is not None:
                # SPEC §3's setup: the server under test alone on one core; the generator (a child of this
                # process), the broker, Redis and the other services on the rest.
                Placement.pin(os.getpid(), placement.rest)
                for name, pid in stack_pids.items():
                    Placement.pin(pid, placement.server if name == "ingest-gateway" else placement.rest)
                say(f"placement: the server under test on {placement.describe()} for everything else")
            calibration_start = cache_calibration(placement)
            say(f"cache calibration at start: {_calibration(calibration_start)}")

            # B first: the baseline. The stack is up and idle meanwhile.
            port = free_port()
            baseline = ManagedProcess(
                name="baseline",
                argv=[sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)],
                log_path=data_dir / "baseline.log",
            ).start()
            wait_for(lambda: port_open(port), timeout=30, what="the baseline server", process=baseline)
            if placement is not None:
                Placement.pin(baseline.pid or 0, placement.server)
            check_accepts(port, None)
            pids = {"baseline": baseline.pid or 0, **{f"stack:{k}": v for k, v in stack_pids.items()}}
            bare = load.warm_and_measure("B baseline", port, None, SINGLE, pids)

            # A, D, C measure the gateway with its broker and Redis; the consumers (separate deployments in
            # production) are paused meanwhile and catch up before each arrival check. E runs A again with
            # the consumers working beside it, for context.
            checked = check_accepts(gateway_port, ws_a.api_key)
            checked_d = check_accepts(gateway_port, ws_d.api_key)
            checked_c = check_accepts(gateway_port, ws_c.api_key, BATCH)
            checked_a2 = check_accepts(gateway_port, ws_a2.api_key)
            with paused(consumers):
                full = load.warm_and_measure("A full path", gateway_port, ws_a.api_key, SINGLE, stack_pids)
                # D, C and B again right after A: the machine's speed drifts on shared hosts, so "half the peak"
                # is offered while A's peak still holds, the figures compared are measured close together, and
                # A is compared with the mean of the B runs around it.
                fixed = load.fixed_rate(
                    "D full path at half its peak",
                    gateway_port,
                    ws_d.api_key,
                    max(1.0, full.measured.rate / 2),
                    stack_pids,
                )
                # C in slices alternating with single events (A again): the batch gain is measured on the
                # same machine state for both.
                full_after, batch, rounds = load.interleaved(
                    ("A full path, again (with C)", ws_a2.api_key),
                    (f"C batch of {BATCH_SIZE}", ws_c.api_key),
                    gateway_port,
                    stack_pids,
                    settings.rounds,
                )
                bare_after = load.warm_and_measure("B baseline, again", port, None, SINGLE, pids)
            baseline.stop(timeout=10)
            baseline = None
            full.arrival = arrived(ws_a, checked, full)
            fixed.arrival = arrived(ws_d, checked_d, fixed)
            batch.arrival = arrived(ws_c, checked_c, batch)
            full_after.arrival = arrived(ws_a2, checked_a2, full_after)

            checked = check_accepts(gateway_port, ws_e.api_key)
            shared = load.warm_and_measure(
                "E full path, consumers running", gateway_port, ws_e.api_key, SINGLE, stack_pids
            )
            shared.arrival = arrived(ws_e, checked, shared)
            calibration_end = cache_calibration(placement)
            say(f"cache calibration at the end: {_calibration(calibration_end)}")
        finally:
            if baseline is not None:
                baseline.stop(timeout=10)
            say("stopping the local stack")
            stack.stop()
    return Report(
        settings=settings,
        full=full,
        baseline=bare,
        fixed=fixed,
        batch=batch,
        shared=shared,
        baseline_after=bare_after,
        full_after=full_after,
        rounds=rounds,
        placement=placement,
        started_at=started_at,
        load_at_start=load_at_start,
        wall_s=time.monotonic() - wall,
        stack_start_s=stack_start_s,
        machine=machine_info,
        calibration=(calibration_start, calibration_end),
    )


# --------------------------------------------------------------------------- output


def _calibration(figures: dict[str, float] | None) -> str:
    if figures is None:
        return "not measured"
    hot, one, five = figures["hot"], figures["after_1ms"], figures["after_5ms"]
    return (
        f"{hot:.1f} µs back to back, {one:.1f} µs after 1 ms idle ({one / hot:.1f}x), "
        f"{five:.1f} µs after 5 ms ({five / hot:.1f}x)"
    )


def _placement(placement: Placement | None) -> str:
    if placement is None:
        return "one usable core: nothing pinned, the servers, the generator and the stack share it"
    return (
        f"the server under test (the bare endpoint for B, the gateway otherwise) pinned to {placement.describe()} "
        "for the load generator, the broker, Redis and the other services (as in SPEC §3's reference setup)"
    )


def _ms(value: float, digits: int = 2) -> str:
    """Milliseconds; an open-loop request never answered within the timeout shows as over it."""
    return f"> {OPEN_LOOP_TIMEOUT_S * 1000:.0f}" if math.isinf(value) else f"{value:.{digits}f}"


def _window_p99s(r: LoadResult) -> str:
    """The p99 of each ``WINDOW_S`` window, in ms, as the console line and the report both give them."""
    return ", ".join(f"{p:.1f}" for p in r.window_p99_ms)


def _tail_line(d: LoadResult) -> str:
    """Where D's tail came from: the p99 of each window, and how the slowest 1 % bunch together in time."""
    if not d.window_p99_ms:
        return ""
    windows = _window_p99s(d)
    slow = sum(d.slow_bursts)
    top = d.slow_bursts[:3]
    return (
        f"The p99 of each {WINDOW_S:g} s of due time (answered requests): {windows} ms. The slowest 1 % "
        f"({slow:,} requests) came in {len(d.slow_bursts):,} burst{'s' if len(d.slow_bursts) != 1 else ''} "
        f"(requests due less than {BURST_GAP_S * 1000:g} ms apart); the largest {len(top)} held {sum(top):,} of "
        f"them ({', '.join(map(str, top))}): few large bursts are stalls, many small ones a steady load."
    )


def _row(r: LoadResult) -> str:
    return (
        f"| {r.name} | {r.rate:,.0f} | {r.event_rate:,.0f} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | {_ms(r.max_ms, 1)} | "
        f"{r.errors} | {r.events:,} | {r.duration_s:.1f} |"
    )


def _cpu_line(r: LoadResult, keys: list[str]) -> str:
    total = sum(r.server_cpu_s.get(k, 0.0) for k in keys)
    per_event = total / r.events * 1e6 if r.events else 0.0
    return f"{total:.1f} CPU-s ({per_event:,.0f} µs per accepted event)"


def _stack_cpu(r: LoadResult) -> str:
    keys = sorted(k for k in r.server_cpu_s if not k.startswith("*"))
    split = ", ".join(
        f"{k} {v:.1f}" for k, v in sorted(r.server_cpu_s.items(), key=lambda kv: -kv[1]) if not k.startswith("*")
    )
    return f"the gateway process: {_cpu_line(r, ['ingest-gateway'])}; the whole stack: {_cpu_line(r, keys)} — {split}"


def foreign_cpu(r: LoadResult) -> float:
    """CPU-seconds the machine spent on processes that are neither the servers nor the generator."""
    ours = sum(v for k, v in r.server_cpu_s.items() if not k.startswith("*")) + r.generator_cpu_s
    return max(0.0, r.server_cpu_s.get("*machine", 0.0) - ours)


def steal(r: LoadResult, cpus: Iterable[int] | None = None) -> float:
    """CPU-seconds the hypervisor ran other guests while ``cpus`` (all cores by default) wanted to run."""
    if cpus is None:
        return r.server_cpu_s.get("*steal", 0.0)
    return sum(r.server_cpu_s.get(f"*steal:cpu{c}", 0.0) for c in cpus)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _arrival_line(label: str, arrival: Arrival | None) -> str:
    if arrival is None:
        return f"- {label}: not checked"
    bounds = (
        f"{arrival.expected_min:,}"
        if arrival.expected_min == arrival.expected_max
        else f"{arrival.expected_min:,}…{arrival.expected_max:,}"
    )
    verdict = "match" if arrival.matches else "**MISMATCH**"
    return f"- {label}: {bounds} accepted, {arrival.counted:,} counted after {arrival.waited_s:.1f} s — {verdict}"


def render(report: Report) -> str:
    s, m = report.settings, report.machine
    a, b, c, d = report.full.measured, report.baseline.measured, report.batch.measured, report.fixed.measured
    e, b2, a2 = report.shared.measured, report.baseline_after.measured, report.full_after.measured
    bare_rate = (b.rate + b2.rate) / 2
    ratio = a.rate / bare_rate if bare_rate else 0.0
    single_rate = a2.event_rate
    gain = c.event_rate / single_rate if single_rate else 0.0
    per_round = ", ".join(f"{rc.event_rate / ra.event_rate if ra.event_rate else 0:.1f}x" for ra, rc in report.rounds)
    achieved_ok = d.rate >= 0.95 * d.offered_rate and d.errors == 0 and d.unanswered == 0
    idle_stack = sum(v for k, v in b.server_cpu_s.items() if k.startswith("stack:"))
    cores = os.cpu_count() or 1
    runs = (a, b, c, d, e, a2)
    others = {r.name.split(",")[0].split()[0] + ("'" if r is a2 else ""): foreign_cpu(r) for r in runs}
    busy_share = max(foreign_cpu(r) / (r.duration_s * cores) for r in runs if r.duration_s > 0)
    contention = (
        f" **Other processes were busy during the run (up to {busy_share:.0%} of the machine): the figures are "
        "lower and noisier than on a quiet machine.**"
        if busy_share > 0.1
        else ""
    )
    server_cores = sorted(report.placement.server) if report.placement is not None else None
    stolen = {k: (steal(r), steal(r, server_cores)) for k, r in zip(others, runs, strict=True)}
    stolen_share = max(
        (steal(r, server_cores) / (r.duration_s * (len(server_cores) if server_cores else cores)))
        for r in runs
        if r.duration_s > 0
    )
    stolen_note = (
        f" **The host took up to {stolen_share:.0%} of the server's core: it was overcommitted, and the figures "
        "are lower and noisier for it.**"
        if stolen_share > 0.05
        else ""
    )
    d_steal = steal(d, server_cores)
    d_steal_line = (
        f" The hypervisor took {d_steal:.1f} s of the server's core from it during D "
        f"({d_steal / d.duration_s if d.duration_s else 0:.0%}; steal time from `/proc/stat`)."
    )
    if s.generator == "wrk":
        gen = (
            f"A, B and C: {s.generator_label}, {s.threads} thread(s), {s.connections} connections "
            f"(C: {s.batch_connections}, each carrying {BATCH_SIZE} events per request), `--timeout 5s`; "
            "a Lua script gives every event a unique `externalRequestId` and counts the accepted events "
            "(202s for A and B; for C the `accepted` field of each 207)"
        )
    else:
        gen = (
            f"A, B and C: built-in Python client (asyncio streams, uvloop, keep-alive HTTP/1.1) in the bench "
            f"process, {s.connections} connections (C: {s.batch_connections}, each carrying {BATCH_SIZE} events per "
            f"request), at most {s.max_requests:,} requests per run; for C it parses "
            "every 207 and sums its `accepted` field. On 2 cores this client is a bottleneck and shares the CPU "
            "with the servers: treat the figures as a floor, not the servers' capacity"
        )
    gen += (
        f". D: the built-in Python client, open loop ({s.rate_connections} keep-alive connections opened "
        "beforehand; request *i* is due at start + *i*/rate and goes out on the first free connection; latency "
        "counts from the due time, so waiting for a connection or for the scheduler is included)"
    )
    load1, load5, _ = report.load_at_start
    lines = [
        "## Ingest: the full gateway path (single events and batches) vs a bare FastAPI endpoint",
        "",
        "Written by `bench/ingest_bench.py` (`make bench`, or "
        "`.venv/bin/python bench/ingest_bench.py --write docs/benchmarks.md`).",
        "",
        f"full path / bare = {ratio:.2f} (target ≥ {TARGET_RATIO:g}): {_verdict(ratio >= TARGET_RATIO)}",
        "",
        f"p99 at half the full path's peak = {_ms(d.p99_ms, 1)} ms (target < {TARGET_P99_MS:g} ms): "
        f"{_verdict(d.p99_ms < TARGET_P99_MS and achieved_ok)}",
        "",
        f"batch events/s / single events/s = {gain:.1f} (target ≥ {TARGET_BATCH_GAIN:g}): "
        f"{_verdict(gain >= TARGET_BATCH_GAIN)}",
        "",
        f"(Issue 3's acceptance. A {a.rate:,.0f} requests/s vs B {bare_rate:,.0f} (the mean of {b.rate:,.0f} "
        f"before and {b2.rate:,.0f} after A, D and C); D offered {d.offered_rate:,.0f} "
        f"requests/s, achieved {d.rate:,.0f} with {d.errors:,} errors and {d.unanswered:,} unanswered; "
        f"C {c.event_rate:,.0f} events/s vs {single_rate:,.0f} single events/s, measured in "
        f"{len(report.rounds)} alternating slices of {s.slice_s:g} s each after D; per round {per_round}.)",
        "",
        f"- Date: {report.started_at:%Y-%m-%d %H:%M} UTC; commit `{m['commit']}`; load average at start "
        f"{load1:.2f} (1 min), {load5:.2f} (5 min)",
        f"- Machine: {m['cpu']}, {m['cores']}, {m['ram']} RAM; Python {m['python']}; {m['os']}",
        f"- Libraries: {versions()}",
        f"- Load generator: {gen}",
        "- Workers: the gateway and the bare endpoint each run as one uvicorn worker (uvloop + httptools), "
        "with the same process settings (the startup heap frozen out of the cyclic GC, the same GC thresholds)",
        f"- Placement: {_placement(report.placement)}",
        "- Cache calibration (`cache_calibration`: the gateway's own parse and validation of the example body on "
        "the server's core, the median of 300; neighbours on a shared host evict a core's caches within "
        "milliseconds, so work that arrives spaced out, as in D, costs more than back to back, as in A and C, "
        f"and by how much changes from run to run): at start {_calibration(report.calibration[0])}; "
        f"at the end {_calibration(report.calibration[1])}",
        f"- Each test: {s.warmup:g} s warm-up, then {s.duration:g} s measured (D: {s.rate_duration:g} s; C and A "
        f"again: {s.rounds} alternating slices of {s.slice_s:g} s each). Order: B, A, D, then C "
        "alternating with A again in slices, B again, E. The figures "
        "compared are measured close together, as the machine's speed drifts within seconds on shared hosts: "
        "D offers half of A's peak right after A, while that peak still holds; A is compared with the mean of "
        "the two B runs around it; C with the single events measured in the slices between its own. The B pair "
        "and the rounds show how much it drifted. During A, D and C the consumers "
        "(reporting, policy-engine, alerting, billing: separate deployments in production) are paused with "
        "SIGSTOP, so the gateway is measured with what it depends on (Redis and the broker); then they resume "
        "and the bench waits until reporting has counted every event each phase got accepted. E repeats A with "
        "the consumers working beside it",
        f"- Whole run: {report.wall_s:.0f} s, of which {report.stack_start_s:.0f} s starting the stack",
        "",
        "| test | requests/s | accepted events/s | p50 ms | p99 ms | max ms | errors | accepted events | measured s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        _row(b),
        _row(a),
        _row(c),
        _row(a2),
        _row(b2),
        _row(e),
        _row(d),
        "",
        f"**D, latency at a fixed rate:** {d.offered_rate:,.0f} requests/s offered (half of A's "
        f"{a.rate:,.0f}), {d.rate:,.0f}/s answered 202; from the due time p50 {_ms(d.p50_ms)} ms, p99 "
        f"{_ms(d.p99_ms)} ms, max {_ms(d.max_ms, 1)} ms; from the moment each request was written (answered "
        f"ones only) p50 {d.send_p50_ms:.2f} ms, p99 {d.send_p99_ms:.2f} ms. Errors {d.errors} (non-202 "
        f"{d.other_status}, socket or timeout {d.socket_errors}); {d.unanswered:,} of {d.sent:,} due requests got "
        f"no answer within {OPEN_LOOP_TIMEOUT_S:g} s or before the run ended, and count as slower than "
        f"any answer in the percentiles. {_tail_line(d)}{d_steal_line}",
        "",
        f"**C, batches of {BATCH_SIZE}:** {c.rate:,.0f} requests/s (207), {c.event_rate:,.0f} events/s accepted, "
        f"{c.rejected_events:,} events rejected inside 207s; p50 {c.p50_ms:.2f} ms, p99 {c.p99_ms:.2f} ms per "
        f"batch (the slowest slice's). Ratio to the single events measured between its slices: {gain:.1f}x "
        f"(per round {per_round}).",
        "",
        f"**E, A with the consumers running:** {e.rate:,.0f} requests/s, p50 {e.p50_ms:.2f} ms, p99 "
        f"{e.p99_ms:.2f} ms ({e.rate / a.rate if a.rate else 0:.2f} of A): on this machine the consumers share "
        "the second core with the broker, Redis and the load generator.",
        "",
        "**Arrival check:** every event a phase got accepted (pre-check, warm-up and measurement; a range when "
        "requests were cut off at the end of a run and may still have been accepted), counted again by "
        "reporting's usage API (`GET /v1/workspaces/{id}/usage?groupBy=day`, ClickHouse on chDB), one workspace "
        "per phase:",
        "",
        _arrival_line("A", report.full.arrival),
        _arrival_line("E", report.shared.arrival),
        _arrival_line("D", report.fixed.arrival),
        _arrival_line("C", report.batch.arrival),
        _arrival_line("A again", report.full_after.arrival),
        _arrival_line("all together", report.arrival),
        "",
        "**CPU while measuring** (from `/proc`, user + system, over each measured window):",
        "",
        f"- B, the baseline server: {_cpu_line(b, ['baseline'])}; the idle stack meanwhile: {idle_stack:.1f} CPU-s; "
        f"after A, D and C: {_cpu_line(b2, ['baseline'])}",
        f"- A, {_stack_cpu(a)}",
        f"- E, {_stack_cpu(e)}",
        f"- D, {_stack_cpu(d)}",
        f"- C, {_stack_cpu(c)}",
        f"- A again, {_stack_cpu(a2)}",
        f"- the load generator: B {b.generator_cpu_s:.1f} CPU-s, A {a.generator_cpu_s:.1f}, "
        f"E {e.generator_cpu_s:.1f}, D {d.generator_cpu_s:.1f}, C {c.generator_cpu_s:.1f}, "
        f"A again {a2.generator_cpu_s:.1f}",
        "- other processes on the machine (not this benchmark): "
        + ", ".join(
            f"{k} {v:.1f} CPU-s of {r.duration_s * cores:.0f} available"
            for (k, v), r in zip(others.items(), runs, strict=True)
        )
        + f".{contention}",
        "- steal, the time the hypervisor ran other guests while this machine's cores wanted to run, in all "
        "(on the server's core): "
        + ", ".join(f"{k} {v:.1f} ({on_server:.1f}) CPU-s" for k, (v, on_server) in stolen.items())
        + f".{stolen_note}",
        "",
        "### What is measured",
        "",
        "- **B, baseline:** a bare FastAPI app in `bench/ingest_bench.py` with one POST endpoint that parses the "
        "same body into a pydantic model and returns 202 JSON; uvicorn, uvloop + httptools, 1 worker, access "
        "log off. It is the framework's floor on this machine.",
        "- **A, full path:** `POST /v1/ingest/llm-request` with `X-API-Key` and SPEC §5's example body (a unique "
        "`externalRequestId` per request) against the real gateway of a local stack started on free ports in "
        "a temporary data dir: API-key lookup, body size limit, strict JSON parsing and validation, one Redis "
        "admission script (rate limit, idempotency, budget, quota), pricing from the price catalog, building "
        "the event, and a Kafka publish with `acks=all` to the local Tansu broker (in memory) before the 202; "
        "settlement is batched in the background. Concurrent requests share one Redis write and one Kafka record "
        "batch per loop iteration (ADR 42).",
        "- **E:** A again, on a workspace of its own, with the consumers (reporting's ClickHouse sink, "
        "policy-engine, …) reading the same events meanwhile.",
        "- **D, latency at half the full path's peak:** the same requests as A at a fixed offered rate of half "
        "A's measured requests/s, open loop, on a workspace of its own.",
        f'- **C, batch:** `POST /v1/ingest/llm-requests` with `{{"events": [...]}}` of {BATCH_SIZE} copies of '
        "the example body (each with a unique `externalRequestId`), on a workspace of its own; events/s counts "
        "the `accepted` field of the 207 answers.",
        "",
        "For context, SPEC §3's reference figures (uvicorn 1 worker with uvloop + httptools on one core, wrk on "
        "the other, 64 connections): FastAPI with a pydantic body ~9.6k req/s; a raw ASGI handler with "
        "`model_validate_json` and orjson ~40k; adding one Redis `EVALSHA` and one aiokafka send per request: "
        "FastAPI ~4.2k, raw ASGI ~8.7k. Redis runs a GCRA script at ~100k ops/s; redis-py is the limit "
        "(11-27k/s unpipelined).",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--duration", type=float, default=10.0, help="measured seconds per test but D (default 10; D: --rate-duration)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each test (default 2)")
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="closed-loop load generator for A, B, C: wrk if on PATH (auto), or the built-in Python client",
    )
    parser.add_argument("--connections", type=int, default=None, help="connections (default 64 wrk, 32 Python)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--rate-connections", type=int, default=64, help="D (fixed rate): connections opened beforehand (default 64)"
    )
    parser.add_argument(
        "--batch-connections",
        type=int,
        default=16,
        help="C (batches): connections (default 16; with 8 the gateway waits on Redis and the broker)",
    )
    parser.add_argument(
        "--rate-duration", type=float, default=30.0, help="D (fixed rate): measured seconds (default 30)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="C: slices alternating with single events (default 5)")
    parser.add_argument(
        "--slice", type=float, default=4.0, help="C and A again: seconds of each alternating slice (default 4)"
    )
    parser.add_argument(
        "--max-requests", type=int, default=2_000_000, help="Python client: at most this many requests per run"
    )
    parser.add_argument(
        "--verify-timeout",
        type=float,
        default=60.0,
        help="seconds reporting's count may stand still below the expected one, per phase (default 60)",
    )
    parser.add_argument("--write", type=Path, default=None, help="write the markdown report to this file")
    parser.add_argument("--serve-baseline", type=int, default=None, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 1 <= args.rate_duration <= 300 or not 1 <= args.warmup <= 60:
        parser.error("--duration and --rate-duration must be in [1, 300] and --warmup in [1, 60] seconds")
    if not 1 <= args.rounds <= 50 or not 1 <= args.slice <= 60:
        parser.error("--rounds must be in [1, 50] and --slice in [1, 60] seconds")
    if not 1 <= args.rate_connections <= 1000 or not 1 <= args.batch_connections <= 1000:
        parser.error("--rate-connections and --batch-connections must be in [1, 1000]")
    return args


def choose_settings(args: argparse.Namespace) -> Settings:
    wrk = shutil.which("wrk")
    if args.generator == "wrk" and wrk is None:
        raise SystemExit("--generator wrk: wrk is not on PATH")
    use_wrk = wrk is not None and args.generator != "python"
    return Settings(
        generator="wrk" if use_wrk else "python",
        generator_label=wrk_version(wrk) if use_wrk and wrk else "python",
        wrk_path=wrk or "",
        connections=args.connections or (64 if use_wrk else 32),
        threads=args.threads,
        duration=args.duration,
        warmup=args.warmup,
        max_requests=args.max_requests,
        verify_timeout=args.verify_timeout,
        rate_connections=args.rate_connections,
        batch_connections=args.batch_connections,
        rate_duration=args.rate_duration,
        rounds=args.rounds,
        slice_s=args.slice,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline)
        return 0
    settings = choose_settings(args)
    say(f"load generator: {settings.generator_label} ({settings.connections} connections)")
    report = run_bench(settings)
    page = render(report)
    print(page)
    if args.write is not None:
        write_section(args.write, "ingest", page)
        say(f"wrote {args.write}")
    # The verdicts are figures, not failures; a broken run (nothing accepted, events lost) is.
    measured = (report.full.measured, report.baseline.measured, report.batch.measured, report.fixed.measured)
    return 0 if report.arrivals_match and all(r.accepted for r in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
