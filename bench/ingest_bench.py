"""Single-event ingest benchmark: the full gateway path against a bare FastAPI endpoint.

Run with ``make bench`` (``.venv/bin/python bench/ingest_bench.py --write docs/benchmarks.md``).

* A, "full path": the whole local stack (Tansu broker, Redis, the five services) on free ports in a
  temporary data dir; ``POST /v1/ingest/llm-request`` with ``X-API-Key`` through the real gateway
  (key lookup in Redis, strict validation, pricing, Kafka publish with ``acks=all``). Afterwards the
  accepted events are counted again through reporting's usage API (ClickHouse on chDB).
* B, "baseline": a bare FastAPI app (below) that parses the same body into a pydantic model and
  answers 202, served by uvicorn (uvloop + httptools, one worker) in a child process.

Both tests use the same load generator, connections, warm-up and duration. The generator is ``wrk``
when it is on PATH (a Lua script gives every request a unique ``externalRequestId`` and counts the
202s), else a small keep-alive HTTP/1.1 client on asyncio streams in this process; on a 2-core machine
the Python client is itself the bottleneck, so its figures are a floor. Every request goes to
127.0.0.1; every loop is bounded in time and in count.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from report import write_section

INGEST_PATH = "/v1/ingest/llm-request"
HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent

# SPEC §5's example body; externalRequestId is replaced per request.
EXAMPLE_BODY: dict[str, Any] = {
    "externalRequestId": "req_01HZX3",
    "provider": "openai",
    "model": "gpt-4o-mini",
    "endpointTag": "checkout.ai_summary",
    "promptVersion": "v12",
    "userId": "u_5f2c",
    "inputTokens": 812,
    "outputTokens": 164,
    "latencyMs": 930,
    "status": "success",
}
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
    import uvicorn

    uvicorn.run(
        baseline_app(),
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
    generator_cpu_s: float = 0.0
    server_cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.accepted / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.other_status + self.socket_errors

    @property
    def unanswered(self) -> int:
        """Requests written without a status read back (cut off at the end, or timed out)."""
        return max(0, self.sent - self.accepted - self.other_status)


@dataclass
class Arrival:
    expected_min: int
    expected_max: int
    counted: int
    waited_s: float

    @property
    def matches(self) -> bool:
        return self.expected_min <= self.counted <= self.expected_max


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --------------------------------------------------------------------------- wrk


WRK_SCRIPT = """
-- generated by bench/ingest_bench.py: unique externalRequestId per request, counts 202s
local body_before = [[%(before)s]]
local body_after = [[%(after)s]]
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
  wrk.headers["Content-Type"] = "application/json"
  %(auth)s
end

function request()
  sent = sent + 1
  return wrk.format("POST", "%(path)s", nil, body_before .. run_prefix .. "-" .. tid .. "-" .. sent .. body_after)
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local s, a, o = 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("sent")
    a = a + t:get("accepted")
    o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\\"sent\\":%%.0f,\\"accepted\\":%%.0f,\\"other\\":%%.0f,\\"duration_us\\":%%.0f," ..
    "\\"p50_us\\":%%.1f,\\"p99_us\\":%%.1f,\\"mean_us\\":%%.1f,\\"max_us\\":%%.1f," ..
    "\\"connect\\":%%.0f,\\"read\\":%%.0f,\\"write\\":%%.0f,\\"timeout\\":%%.0f}\\n",
    s, a, o, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.timeout))
end
"""


def write_wrk_script(path: Path, api_key: str | None) -> Path:
    before, after = body_parts()
    auth = f'wrk.headers["X-API-Key"] = "{api_key}"' if api_key else ""
    for part in (before, after):
        if b"]]" in part:
            raise ValueError("the body cannot be embedded in a Lua long string")
    path.write_text(
        WRK_SCRIPT % {"before": before.decode(), "after": after.decode(), "auth": auth, "path": INGEST_PATH}
    )
    path.chmod(0o600)
    return path


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" Copyright", 1)[0].strip() if first else "wrk"


def run_wrk(
    wrk: str, *, name: str, port: int, script: Path, prefix: str, connections: int, threads: int, duration: float
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
        f"http://{HOST}:{port}{INGEST_PATH}",
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
        generator_cpu_s=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


# --------------------------------------------------------------------------- Python fallback generator


@dataclass
class _Tally:
    sent: int = 0
    accepted: int = 0
    other: int = 0
    socket_errors: int = 0
    budget: int = 0
    latencies: list[float] = field(default_factory=list)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; return its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for raw in lines[1:]:
        if b":" in raw:
            key, value = raw.split(b":", 1)
            headers[key.strip().lower()] = value.strip().lower()
    keep_alive = headers.get(b"connection") != b"close"
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        for _ in range(100_000):
            size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            await reader.readexactly(size + 2)
    else:
        await reader.read()
        keep_alive = False
    return status, keep_alive


async def _connection(
    port: int, head: bytes, make_body: Callable[[], bytes], deadline: float, tally: _Tally, limit_s: float
) -> None:
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    try:
        while time.monotonic() < deadline and tally.budget > 0:
            if writer is None or reader is None:
                try:
                    async with asyncio.timeout(limit_s):
                        reader, writer = await asyncio.open_connection(HOST, port)
                except (OSError, TimeoutError):
                    tally.socket_errors += 1
                    await asyncio.sleep(0.05)
                    continue
            tally.budget -= 1
            body = make_body()
            started = time.perf_counter()
            tally.sent += 1
            try:
                async with asyncio.timeout(limit_s):
                    writer.write(head % len(body) + body)
                    status, keep_alive = await _read_response(reader)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                tally.socket_errors += 1
                writer.close()
                writer = reader = None
                continue
            tally.latencies.append(time.perf_counter() - started)
            if status == 202:
                tally.accepted += 1
            else:
                tally.other += 1
            if not keep_alive:
                writer.close()
                writer = reader = None
    finally:
        if writer is not None:
            writer.close()


async def _python_load(
    port: int, api_key: str | None, prefix: str, connections: int, duration: float, max_requests: int
) -> tuple[_Tally, float]:
    before, after = body_parts()
    counter = iter(range(1, max_requests + 1))
    run = prefix.encode()

    def make_body() -> bytes:
        return before + run + b"-" + str(next(counter, 0)).encode() + after

    head = (
        f"POST {INGEST_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        + (f"X-API-Key: {api_key}\r\n" if api_key else "")
        + "Content-Length: %d\r\n\r\n"
    ).encode()
    tally = _Tally(budget=max_requests)
    started = time.monotonic()
    deadline = started + duration
    await asyncio.gather(*(_connection(port, head, make_body, deadline, tally, 5.0) for _ in range(connections)))
    return tally, time.monotonic() - started


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_python(
    *, name: str, port: int, api_key: str | None, prefix: str, connections: int, duration: float, max_requests: int
) -> LoadResult:
    cpu_before = time.process_time()
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        tally, elapsed = runner.run(_python_load(port, api_key, prefix, connections, duration, max_requests))
    latencies = sorted(tally.latencies)
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
        mean_ms=(sum(latencies) / len(latencies) * 1000) if latencies else 0.0,
        max_ms=(latencies[-1] * 1000) if latencies else 0.0,
        generator_cpu_s=time.process_time() - cpu_before,
    )


# --------------------------------------------------------------------------- helpers


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (0.0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU-seconds all cores spent busy since boot (user, nice, system, irq, softirq, steal); 0.0 without /proc."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    except (OSError, IndexError, ValueError):
        return 0.0
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def cpu_meter(pids: dict[str, int], into: dict[str, float]) -> Iterator[None]:
    """Per-process CPU-seconds over the block, plus ``*machine`` (every process, all cores)."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    machine_before = machine_busy_seconds()
    yield
    into["*machine"] = machine_busy_seconds() - machine_before
    for name, pid in pids.items():
        into[name] = cpu_seconds(pid) - before[name]


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


def check_accepts(port: int, api_key: str | None) -> None:
    """One request before the load, so a wrong key or body fails loudly instead of as 100% errors."""
    headers = {"X-API-Key": api_key} if api_key else {}
    body = {**EXAMPLE_BODY, "externalRequestId": f"bench-check-{uuid.uuid4().hex}"}
    status, answer = http_json("POST", f"http://{HOST}:{port}{INGEST_PATH}", headers, body)
    if status != 202:
        raise RuntimeError(f"{HOST}:{port}{INGEST_PATH} answered {status}: {answer}")


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
    """Poll reporting until at least ``expected_min`` events are counted and the count holds still."""
    started = time.monotonic()
    deadline = started + timeout
    counted, previous = -1, -2
    while time.monotonic() < deadline:
        counted = usage_count(reporting, workspace_id, admin_token)
        if counted >= expected_min and counted == previous:
            break
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


@dataclass
class Report:
    settings: Settings
    full: LoadResult
    baseline: LoadResult
    arrival: Arrival
    started_at: datetime
    wall_s: float
    stack_start_s: float
    machine: dict[str, str]


class Load:
    """Runs one warm-up and one measurement against a port with the chosen generator."""

    def __init__(self, settings: Settings, work_dir: Path) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.run_id = uuid.uuid4().hex[:8]

    def run(self, name: str, port: int, api_key: str | None, duration: float, tag: str) -> LoadResult:
        s = self.settings
        prefix = f"bench-{self.run_id}-{tag}"
        if s.generator == "wrk":
            script = write_wrk_script(self.work_dir / f"wrk-{tag}.lua", api_key)
            return run_wrk(
                s.wrk_path,
                name=name,
                port=port,
                script=script,
                prefix=prefix,
                connections=s.connections,
                threads=s.threads,
                duration=duration,
            )
        return run_python(
            name=name,
            port=port,
            api_key=api_key,
            prefix=prefix,
            connections=s.connections,
            duration=duration,
            max_requests=s.max_requests,
        )

    def warm_and_measure(
        self, name: str, port: int, api_key: str | None, server_pids: dict[str, int]
    ) -> tuple[LoadResult, LoadResult]:
        tag = name.split()[0]
        say(f"{name}: warm-up {self.settings.warmup:g}s")
        warm = self.run(name, port, api_key, self.settings.warmup, f"{tag}-warm")
        say(f"{name}: measuring {self.settings.duration:g}s")
        cpu: dict[str, float] = {}
        with cpu_meter(server_pids, cpu):
            measured = self.run(name, port, api_key, self.settings.duration, f"{tag}-run")
        measured.server_cpu_s = cpu
        say(
            f"{name}: {measured.rate:,.0f} accepted/s, p50 {measured.p50_ms:.2f} ms, "
            f"p99 {measured.p99_ms:.2f} ms, errors {measured.errors}"
        )
        return warm, measured


def run_bench(settings: Settings) -> Report:
    from opsmeter_cli.stack import SERVICES, Stack, StackConfig, operator_token
    from opsmeter_runtime.localstack import ManagedProcess, free_port, port_open, wait_for

    started_at = datetime.now(UTC)
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
            status, created = http_json(
                "POST", f"{gateway}/v1/admin/workspaces", {"X-Operator-Token": operator_token(config)}, WORKSPACE_BODY
            )
            if status != 201:
                raise RuntimeError(f"creating the workspace answered {status}: {created}")
            workspace_id, api_key, admin_token = created["workspaceId"], created["apiKey"], created["adminToken"]
            say(f"workspace {workspace_id} created")

            gateway_port = config.service_ports["ingest-gateway"]
            check_accepts(gateway_port, api_key)
            warm_a, full = load.warm_and_measure("A full path", gateway_port, api_key, stack.pids())

            # Every 202 of A (check, warm-up, measurement) must reach reporting; requests cut off at the end
            # of a run may also have been accepted, so up to that many more may arrive.
            expected_min = 1 + warm_a.accepted + full.accepted
            expected_max = expected_min + warm_a.unanswered + full.unanswered
            say(f"waiting for reporting to count {expected_min} events (up to {settings.verify_timeout:g}s)")
            arrival = wait_for_arrival(
                reporting,
                workspace_id,
                admin_token,
                expected_min=expected_min,
                expected_max=expected_max,
                timeout=settings.verify_timeout,
            )
            say(f"reporting counts {arrival.counted} events ({'match' if arrival.matches else 'MISMATCH'})")

            port = free_port()
            baseline = ManagedProcess(
                name="baseline",
                argv=[sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)],
                log_path=data_dir / "baseline.log",
            ).start()
            wait_for(lambda: port_open(port), timeout=30, what="the baseline server", process=baseline)
            check_accepts(port, None)
            pids = {"baseline": baseline.pid or 0, **{f"stack:{k}": v for k, v in stack.pids().items()}}
            _, bare = load.warm_and_measure("B baseline", port, None, pids)
        finally:
            if baseline is not None:
                baseline.stop(timeout=10)
            say("stopping the local stack")
            stack.stop()
    return Report(
        settings=settings,
        full=full,
        baseline=bare,
        arrival=arrival,
        started_at=started_at,
        wall_s=time.monotonic() - wall,
        stack_start_s=stack_start_s,
        machine=machine(),
    )


# --------------------------------------------------------------------------- output


def _row(r: LoadResult) -> str:
    return (
        f"| {r.name} | {r.rate:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} | "
        f"{r.accepted:,} | {r.duration_s:.1f} |"
    )


def _cpu_line(r: LoadResult, keys: list[str]) -> str:
    total = sum(r.server_cpu_s.get(k, 0.0) for k in keys)
    per_event = total / r.accepted * 1e6 if r.accepted else 0.0
    return f"{total:.1f} CPU-s ({per_event:,.0f} µs per accepted event)"


def foreign_cpu(r: LoadResult) -> float:
    """CPU-seconds the machine spent on processes that are neither the servers nor the generator."""
    ours = sum(v for k, v in r.server_cpu_s.items() if not k.startswith("*")) + r.generator_cpu_s
    return max(0.0, r.server_cpu_s.get("*machine", 0.0) - ours)


def render(report: Report) -> str:
    s, a, b, m = report.settings, report.full, report.baseline, report.machine
    ratio = b.rate / a.rate if a.rate else float("inf")
    stack_keys = sorted(k for k in a.server_cpu_s if not k.startswith("*"))
    split = ", ".join(
        f"{k} {v:.1f}" for k, v in sorted(a.server_cpu_s.items(), key=lambda kv: -kv[1]) if not k.startswith("*")
    )
    idle_stack = sum(v for k, v in b.server_cpu_s.items() if k.startswith("stack:"))
    other_a, other_b = foreign_cpu(a), foreign_cpu(b)
    cores = os.cpu_count() or 1
    busy_share = max(other_a / (a.duration_s * cores), other_b / (b.duration_s * cores))
    contention = (
        f" **Other processes were busy during the run (up to {busy_share:.0%} of the machine): the figures are "
        "lower and noisier than on a quiet machine.**"
        if busy_share > 0.1
        else ""
    )
    if s.generator == "wrk":
        gen = (
            f"{s.generator_label}, {s.threads} thread(s), {s.connections} connections, `--timeout 5s`; a Lua "
            "script gives every request a unique `externalRequestId` and counts the 202s"
        )
    else:
        gen = (
            f"{s.generator_label}: built-in Python client (asyncio streams, uvloop, keep-alive HTTP/1.1) in the "
            f"bench process, {s.connections} connections, at most {s.max_requests:,} requests per run. "
            "On 2 cores this client is the bottleneck and shares the CPU with the servers: treat the "
            "figures as a floor, not the servers' capacity"
        )
    arrival = report.arrival
    verdict = "match" if arrival.matches else "**MISMATCH**"
    bounds = (
        f"{arrival.expected_min:,}"
        if arrival.expected_min == arrival.expected_max
        else f"{arrival.expected_min:,}…{arrival.expected_max:,}"
    )
    lines = [
        "## Single-event ingest: the full gateway path vs a bare FastAPI endpoint",
        "",
        "Written by `bench/ingest_bench.py` (`make bench`).",
        "",
        f"- Date: {report.started_at:%Y-%m-%d %H:%M} UTC; commit `{m['commit']}`",
        f"- Machine: {m['cpu']}, {m['cores']}, {m['ram']} RAM; Python {m['python']}; {m['os']}",
        f"- Libraries: {versions()}",
        f"- Load generator: {gen}",
        f"- Each test: {s.warmup:g} s warm-up, then {s.duration:g} s measured; same generator and settings for "
        "both. Nothing is pinned to a core: the servers, the generator and (for A) the broker, Redis and the "
        "five services share all cores",
        f"- Whole run: {report.wall_s:.0f} s, of which {report.stack_start_s:.0f} s starting the stack",
        "",
        "| test | accepted events/s | p50 ms | p99 ms | errors | accepted (202) | measured s |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _row(a),
        _row(b),
        "",
        f"**Ratio:** the bare endpoint accepts **{ratio:.1f}x** as many events per second as the full path "
        f"(the full path reaches {(a.rate / b.rate * 100) if b.rate else 0:.0f}% of it); "
        f"p50 {a.p50_ms:.2f} ms vs {b.p50_ms:.2f} ms.",
        "",
        f"**Arrival check (A):** {bounds} events accepted by the gateway (pre-check, warm-up and measurement; "
        "a range when requests were cut off at the end of a run and may still have been accepted); "
        f"reporting's usage API (`GET /v1/workspaces/{{id}}/usage?groupBy=day`, ClickHouse on chDB) counted "
        f"{arrival.counted:,} after {arrival.waited_s:.1f} s — {verdict}.",
        "",
        "**CPU while measuring** (from `/proc`, user + system):",
        "",
        f"- A, the gateway process: {_cpu_line(a, ['ingest-gateway'])}; the whole stack: "
        f"{_cpu_line(a, stack_keys)} — {split}",
        f"- B, the baseline server: {_cpu_line(b, ['baseline'])}; the idle stack meanwhile: {idle_stack:.1f} CPU-s",
        f"- the load generator: A {a.generator_cpu_s:.1f} CPU-s, B {b.generator_cpu_s:.1f} CPU-s",
        f"- other processes on the machine (not this benchmark): A {other_a:.1f} CPU-s of "
        f"{a.duration_s * cores:.0f} available, B {other_b:.1f} of {b.duration_s * cores:.0f}.{contention}",
        "",
        "### What is measured",
        "",
        "- **A, full path:** `POST /v1/ingest/llm-request` with `X-API-Key` and SPEC §5's example body (a unique "
        "`externalRequestId` per request) against the real gateway of a local stack started on free ports in "
        "a temporary data dir: API-key lookup in Redis, body size limit, strict JSON parsing and validation, "
        "pricing from the price catalog, building the event, and a Kafka publish with `acks=all` to the local "
        "Tansu broker (in memory) before the 202. While it runs, the consumers (reporting's ClickHouse sink, "
        "policy-engine, …) read the same events on the same cores.",
        "- **B, baseline:** a bare FastAPI app in `bench/ingest_bench.py` with one POST endpoint that parses the "
        "same body into a pydantic model and returns 202 JSON; uvicorn, uvloop + httptools, 1 worker, access "
        "log off. It is the framework's floor on this machine, not a target the gateway can reach.",
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
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per test (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each test (default 2)")
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk if on PATH (auto), or the built-in Python client",
    )
    parser.add_argument("--connections", type=int, default=None, help="connections (default 64 wrk, 32 Python)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--max-requests", type=int, default=2_000_000, help="Python client: at most this many requests per run"
    )
    parser.add_argument("--verify-timeout", type=float, default=60.0, help="seconds to wait for reporting's count")
    parser.add_argument("--write", type=Path, default=None, help="write the markdown report to this file")
    parser.add_argument("--serve-baseline", type=int, default=None, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 1 <= args.warmup <= 60:
        parser.error("--duration must be in [1, 300] and --warmup in [1, 60] seconds")
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
    return 0 if report.arrival.matches and report.full.accepted and report.baseline.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
