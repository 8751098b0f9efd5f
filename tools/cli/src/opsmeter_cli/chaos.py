"""Chaos scenarios: one fault on a local stack of its own, under a loadgen load, judged by loadgen's oracle.

Each scenario starts the local stack on free ports in a temporary directory, with a supervisor thread that
restarts what dies (as ``opsmeter stack up`` does), sends a paced load over a few workspaces, injects its fault
a quarter of the way in, and measures the time from the fault's end until an event sent then is in ``/usage``.
When the load is done the answer log is compared with ``/usage``, the policy engine's spend, the plan counters and
(when the gateway kept its counters) the gateway's rejection counters: every 2xx must be counted exactly once.

``bench/chaos.py`` runs them all and writes ``docs/reliability.md``; ``tests/e2e/test_chaos.py`` runs the cheap
ones in their short form.
"""

import asyncio
import contextlib
import os
import random
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import clickhouse_connect
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from opsmeter_cli import loadgen
from opsmeter_cli.loadgen import NO_ANSWER, Answer, Urls, Workspace
from opsmeter_cli.stack import Stack, StackConfig, http_ready, operator_token
from opsmeter_runtime.lemonsqueezy_double import LemonSqueezyDouble
from opsmeter_runtime.localstack import port_open

WORKSPACES = 4
LIMITS = {"rateLimitPerMinute": 1_000_000, "monthlyRequestQuota": 100_000_000}
"""Limits no load here reaches: a rejection in these scenarios is the fault's, not the plan's."""
RETRY_FOR_S = 60.0
"""How long a request without an answer is sent again (same externalRequestId), as an SDK would."""
SETTLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Size:
    rate: int
    """Requests per second over all workspaces."""
    duration_s: int
    stall_s: float
    """How long a stall (SIGSTOP) lasts."""

    @property
    def events(self) -> int:
        return self.rate * self.duration_s


@dataclass
class Run:
    """A running scenario: the stack and the HTTP client the fault and the probe use."""

    stack: Stack
    http: httpx.AsyncClient
    urls: Urls
    size: Size
    resets_gateway_counters: bool = False
    notes: list[str] = field(default_factory=list)

    def pid(self, name: str) -> int:
        pid = self.stack.processes[name].pid
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        return pid

    async def stall(self, name: str, seconds: float) -> None:
        pid = self.pid(name)
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    def kill_9(self, name: str) -> int:
        """SIGKILL ``name`` (the supervisor restarts it); its old pid."""
        old = self.pid(name)
        os.kill(old, signal.SIGKILL)
        return old

    async def back(self, name: str, old_pid: int) -> None:
        """Returns once the supervisor has restarted ``name`` and it answers again."""
        deadline = time.monotonic() + 120
        while not self._back(name, old_pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not come back within 120 s of its kill -9")
            await asyncio.sleep(0.1)

    def _back(self, name: str, old_pid: int) -> bool:
        process = self.stack.processes[name]
        if process.pid == old_pid or not process.alive():
            return False
        if name == "redis":
            return port_open(self.stack.config.redis_port)
        return http_ready(self.stack.config.url(name))


Fault = Callable[[Run], Awaitable[None]]
"""Injects the fault and returns when it has ended (the stalled process resumed, the killed one restarted)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str
    """The fault in words, for the report (``{stall}`` is the stall's length)."""
    inject: Fault
    env: dict[str, str] = field(default_factory=dict)
    resets_gateway_counters: bool = False
    """The gateway restarts, so its /metrics start from zero: the rejection counters cannot be compared."""
    drive: "Callable[[Stack, Size], Coroutine[Any, Any, Outcome]] | None" = None
    """Its own load and checks instead of :func:`exercise`'s (a scenario that is a load, not a fault)."""
    doubles: "Callable[[], contextlib.AbstractContextManager[dict[str, str]]] | None" = None
    """Test doubles the stack talks to, started first; their environment for the services."""
    evidence: tuple[str, str] | None = None
    """(service, text): the fault took hold only if its log then holds the text."""
    known: str = ""
    """What the scenario finds that the oracle does not accept, and why, for the report."""


@dataclass
class Outcome:
    scenario: str
    load: str
    fault: str
    by_status: dict[int, int]
    accepted: int
    lost: int
    double_counted: int
    refused_counted: int
    """Events answered 503 (and never 2xx) that were counted all the same."""
    recover_s: float | None
    problems: list[str]
    seconds: float
    landed_after_503: int = 0
    """Events answered 503 (not confirmed) whose retry found them taken after all: answered 202 duplicate."""

    @property
    def exact(self) -> bool:
        return not self.problems


async def _broker_stalled(run: Run) -> None:
    await run.stall("broker", run.size.stall_s)


async def _redis_stalled(run: Run) -> None:
    await run.stall("redis", run.size.stall_s)


async def _redis_killed(run: Run) -> None:
    await run.back("redis", run.kill_9("redis"))


async def _spool_unwritable(run: Run) -> None:
    """The gateway's spool directory replaced by a file (no write can succeed there, even as root) while the
    broker is stalled, so no event can be made durable; put back before the broker resumes."""
    [spool_dir] = [d for d in (run.stack.config.data_dir / "spool").iterdir() if d.is_dir()]
    aside = spool_dir.with_name(f"{spool_dir.name}.chaos-aside")
    spool_dir.rename(aside)
    spool_dir.write_text("chaos: the spool directory is not writable\n")
    pid = run.pid("broker")
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(run.size.stall_s)
    finally:
        spool_dir.unlink()
        aside.rename(spool_dir)
        os.kill(pid, signal.SIGCONT)


INSERT_FAULT_FILE = "chaos-fail-inserts"
"""Under the stack's data dir: while it exists reporting's sink inserts fail (its fault-injection setting)."""


async def _inserts_failing(run: Run) -> None:
    fault = run.stack.config.data_dir / INSERT_FAULT_FILE
    fault.write_text("chaos: ClickHouse inserts fail while this file exists\n")
    try:
        await asyncio.sleep(run.size.stall_s)
    finally:
        fault.unlink()


async def _services_killed(run: Run) -> None:
    """Reporting, the policy engine, then the gateway, a tenth of the run apart (each restarts meanwhile)."""
    killed: dict[str, int] = {}
    for name in ("reporting", "policy-engine", "ingest-gateway"):
        if killed:
            await asyncio.sleep(run.size.duration_s / 10)
        killed[name] = run.kill_9(name)
    for name, pid in killed.items():
        await run.back(name, pid)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("broker-stalled", "broker SIGSTOPped {stall} s", _broker_stalled),
        Scenario("redis-killed", "Redis kill -9, restarted by the supervisor", _redis_killed),
        Scenario("redis-stalled", "Redis SIGSTOPped {stall} s", _redis_stalled),
        Scenario(
            "spool-unwritable",
            "spool directory unusable (a file in its place) while the broker is SIGSTOPped {stall} s",
            _spool_unwritable,
        ),
        Scenario(
            "clickhouse-inserts-failing",
            "every ClickHouse insert of reporting's sink fails for {stall} s (injected at the adapter)",
            _inserts_failing,
            evidence=("reporting", "fault injected: inserts fail"),
        ),
        Scenario(
            "services-killed",
            "kill -9 of reporting, the policy engine, then the gateway, a tenth of the run apart; each restarted",
            _services_killed,
            resets_gateway_counters=True,
        ),
    )
}

SHORT = Size(rate=100, duration_s=30, stall_s=15)
LONG = {
    "broker-stalled": Size(rate=200, duration_s=90, stall_s=30),
    "redis-killed": Size(rate=200, duration_s=90, stall_s=0),
    "redis-stalled": Size(rate=200, duration_s=120, stall_s=60),
    "services-killed": Size(rate=500, duration_s=200, stall_s=0),
    "spool-unwritable": Size(rate=200, duration_s=90, stall_s=30),
    "clickhouse-inserts-failing": Size(rate=200, duration_s=120, stall_s=60),
}
"""The sizes the issue names: a 30 s broker stall, a 60 s Redis stall, a 100,000-event run for the kills."""
DEFAULT = {
    "broker-stalled": Size(rate=100, duration_s=45, stall_s=30),
    "redis-killed": SHORT,
    "redis-stalled": SHORT,
    "services-killed": Size(rate=100, duration_s=45, stall_s=0),
    "spool-unwritable": Size(rate=100, duration_s=30, stall_s=10),
    "clickhouse-inserts-failing": Size(rate=100, duration_s=45, stall_s=20),
}


_SUPERVISORS: dict[int, tuple[threading.Event, threading.Thread]] = {}


@contextlib.contextmanager
def supervised(stack: Stack) -> Iterator[None]:
    """Restart whatever dies while the block runs, as ``opsmeter stack up``'s supervisor does."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(0.1):
            stack.supervise()

    thread = threading.Thread(target=loop, name="chaos-supervisor", daemon=True)
    _SUPERVISORS[id(stack)] = (done, thread)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(10)
        _SUPERVISORS.pop(id(stack), None)


def stop_supervised(stack: Stack) -> None:
    """Stop the supervisor (if any), then the stack, which then stays down."""
    done, thread = _SUPERVISORS.get(id(stack), (threading.Event(), None))
    done.set()
    if thread is not None:
        thread.join(10)
    stack.stop()


def fault_hooks(data_dir: Path) -> dict[str, str]:
    """The services' fault-injection settings, pointed under ``data_dir``: inert until a scenario arms them."""
    return {"OPSMETER_REPORTING_FAULT_INSERT_FAILURE_FILE": str(data_dir / INSERT_FAULT_FILE)}


@contextlib.contextmanager
def own_stack(env: dict[str, str] | None = None, *, data_dir: Path | None = None) -> Iterator[Stack]:
    """The local stack on free ports in a temporary directory, supervised; stopped (and resumed first) at exit."""
    with contextlib.ExitStack() as cleanup:
        if data_dir is None:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="opsmeter-chaos-")))
        stack = Stack(StackConfig.on_free_ports(data_dir, {**fault_hooks(data_dir), **(env or {})}))
        stack.start(timeout=180)
        try:
            with supervised(stack):
                yield stack
        finally:
            for process in stack.processes.values():
                if process.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGCONT)
            stack.stop()


def urls_of(stack: Stack) -> Urls:
    c = stack.config
    return Urls(c.url("ingest-gateway"), c.url("reporting"), c.url("policy-engine"), c.url("billing"))


async def _counted(run: Run, ws: Workspace) -> int:
    try:
        usage = await run.http.get(
            f"{run.urls.reporting}/v1/workspaces/{ws.workspace_id}/usage",
            headers={"Authorization": f"Bearer {ws.admin_token}"},
        )
    except httpx.TransportError:
        return -1
    return int(usage.json()["totals"]["requests"]) if usage.status_code == 200 else -1


async def probe(run: Run, ws: Workspace, fault_end: float, answers: list[Answer]) -> float | None:
    """Seconds from ``fault_end`` until an event sent after it was accepted and is in ``/usage``."""
    deadline = fault_end + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        before = await _counted(run, ws)
        body = loadgen.event_body(f"probe_{uuid.uuid4().hex}")
        sent = await loadgen.post_event(run.http, run.urls.gateway, ws, body, retry_for_s=RETRY_FOR_S)
        answers += sent
        answer = sent[-1]
        if 200 <= answer.status < 300 and before >= 0:
            while time.monotonic() < deadline:
                if await _counted(run, ws) > before:
                    return time.monotonic() - fault_end
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.2)
    return None


async def exercise(stack: Stack, size: Size, *, scenario: Scenario) -> Outcome:
    """Load, fault and oracle on a running stack; the stack is left running."""
    started = time.monotonic()
    urls = urls_of(stack)
    async with loadgen.client(80) as http:
        run = Run(stack, http, urls, size, scenario.resets_gateway_counters)
        token = operator_token(stack.config)
        loaded = await loadgen.create_workspaces(http, urls, token, WORKSPACES, "enterprise", LIMITS)
        [prober] = await loadgen.create_workspaces(http, urls, token, 1, "enterprise", LIMITS)
        before = await loadgen.gateway_rejections(http, urls.gateway)
        load_started, sent_in = time.monotonic(), list[float]()
        load = asyncio.create_task(
            loadgen.send(urls.gateway, loaded, rate=size.rate, duration_s=size.duration_s, retry_for_s=RETRY_FOR_S)
        )
        load.add_done_callback(lambda _: sent_in.append(time.monotonic() - load_started))
        await asyncio.sleep(size.duration_s / 4)
        await scenario.inject(run)
        probe_answers: list[Answer] = []
        recover_s = await probe(run, prober, time.monotonic(), probe_answers)
        answers = [*await load, *probe_answers]
        outcome = await judge(run, scenario, size, [*loaded, prober], answers, before, recover_s, started)
        outcome.load += f", sent in {sent_in[0]:.0f} s"
    if scenario.evidence is not None:
        service, text = scenario.evidence
        log_file = stack.config.data_dir / "logs" / f"{service}.log"
        if text not in log_file.read_text(errors="replace"):
            outcome.problems.append(f"the fault never took hold: {service}'s log has no {text!r}")
    return outcome


async def judge(
    run: Run,
    scenario: Scenario,
    size: Size,
    workspaces: list[Workspace],
    answers: list[Answer],
    rejections_before: Counter[str],
    recover_s: float | None,
    started: float,
) -> Outcome:
    """loadgen's oracle over the answers; lost and double-counted are accepted events (the larger of /usage's
    and the plan counter's disagreement per workspace)."""
    expected = loadgen.expected_from(answers)
    problems: list[str] = []
    if not run.resets_gateway_counters:
        counted = await loadgen.gateway_rejections(run.http, run.urls.gateway)
        counted.subtract(rejections_before)
        problems += loadgen.rejection_mismatches(expected, +counted)
    by_id = {ws.workspace_id: ws for ws in workspaces}
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        observed = {ws: await loadgen.observe(run.http, run.urls, by_id[ws]) for ws in expected}
        found = loadgen.mismatches(expected, observed)
        if not found or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    if not found:
        await asyncio.sleep(2)  # nothing arrives late and counts twice
        observed = {ws: await loadgen.observe(run.http, run.urls, by_id[ws]) for ws in expected}
        found = loadgen.mismatches(expected, observed)
    for ws, want in expected.items():
        if observed[ws].usage_requests != want.events:
            problems += await _stored_beyond_answers(run, by_id[ws], answers)
    lost = double = refused_counted = 0
    for ws, want in expected.items():
        got = observed[ws]
        counts = (got.usage_requests, got.plan_requests)
        lost += max(0, want.events - min(counts))
        extra = max(0, max(counts) - want.events)
        # Counted beyond the 2xx answers: up to the ids only ever answered 503, those; the rest twice.
        refused = len(_only_refused(a for a in answers if a.workspace_id == ws))
        refused_counted += min(extra, refused)
        double += extra - min(extra, refused)
    landed_after_503 = len(_landed_after_503(answers))
    unanswered = sum(1 for a in answers if a.status == NO_ANSWER)
    if unanswered:
        problems.append(f"{unanswered} requests got no answer within {RETRY_FOR_S:.0f} s of retries")
    return Outcome(
        scenario=scenario.name,
        load=f"{size.events:,} events at {size.rate}/s over {WORKSPACES} workspaces",
        fault=scenario.fault.format(stall=f"{size.stall_s:g}"),
        by_status=dict(sorted(Counter(a.status for a in answers).items())),
        accepted=sum(e.events for e in expected.values()),
        lost=lost,
        double_counted=double,
        refused_counted=refused_counted,
        landed_after_503=landed_after_503,
        recover_s=recover_s,
        problems=problems + found,
        seconds=time.monotonic() - started,
    )


STORED_BY_ID = (
    "SELECT external_request_id AS id, count() AS copies, uniqExact(event_id) AS ids, "
    "groupArray(toString(occurred_at)) AS occurred, groupArray(toString(ingested_at)) AS ingested "
    "FROM llm_requests_raw GROUP BY external_request_id"
)


async def _stored_beyond_answers(run: Run, ws: Workspace, answers: list[Answer]) -> list[str]:
    """When /usage disagrees: which of the workspace's raw rows the answers do not account for (an id never
    answered 2xx, or one id in several rows), with every answer its requests got, for the fix."""
    answer = await run.http.post(
        f"{run.urls.reporting}/v1/workspaces/{ws.workspace_id}/sql",
        json={"sql": STORED_BY_ID, "maxRows": 100_000},
        headers={"Authorization": f"Bearer {ws.admin_token}"},
        timeout=120,
    )
    if answer.status_code != 200:
        return [f"{ws.workspace_id}: the raw rows could not be read ({answer.status_code}: {answer.text[:200]})"]
    body = answer.json()
    stored = [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]
    accepted = {a.external_request_id for a in answers if a.workspace_id == ws.workspace_id and 200 <= a.status < 300}
    odd = [r for r in stored if r["id"] not in accepted or int(r["copies"]) > 1]
    found = [
        f"{ws.workspace_id}: raw holds {len(stored):,} ids in {sum(int(r['copies']) for r in stored):,} rows; "
        f"{sum(1 for r in stored if r['id'] not in accepted)} never answered 2xx, "
        f"{sum(1 for r in stored if int(r['copies']) > 1)} in more than one row"
    ]
    for row in odd[:5]:
        got = [(a.status, a.attempt, a.duplicate) for a in answers if a.external_request_id == row["id"]]
        found.append(f"  {row}; answers (status, attempt, duplicate): {got}")
    return found


def _landed_after_503(answers: Iterable[Answer]) -> set[str]:
    """The externalRequestIds answered 503 whose retry was answered as a duplicate: taken after all (ADR 62)."""
    refused = {a.external_request_id for a in answers if a.status == 503}
    return {
        a.external_request_id
        for a in answers
        if a.external_request_id in refused and a.attempt > 1 and 200 <= a.status < 300 and a.duplicate
    }


def _only_refused(answers: Iterable[Answer]) -> set[str]:
    """The externalRequestIds answered 503 and never 2xx."""
    refused, accepted = set(), set()
    for a in answers:
        if a.status == 503:
            refused.add(a.external_request_id)
        elif 200 <= a.status < 300:
            accepted.add(a.external_request_id)
    return refused - accepted


def run_scenario(scenario: Scenario, size: Size) -> Outcome:
    """``scenario`` on a stack of its own."""
    with contextlib.ExitStack() as doubles:
        env = {**(doubles.enter_context(scenario.doubles()) if scenario.doubles else {}), **scenario.env}
        with own_stack(env) as stack:
            return asyncio.run((scenario.drive or partial(exercise, scenario=scenario))(stack, size))


PLAN_RATE_LIMITS = {"free": 120, "starter": 300, "pro": 600, "enterprise": 300, "team": 3000}
"""Requests per minute: each plan's default (billing's DEFAULT_LIMITS), and for enterprise an override (its policy)."""
OVER_LIMIT = 4
CLIENTS_PER_PLAN = 4


async def over_the_limit(stack: Stack, size: Size) -> Outcome:
    """16 clients (4 per workspace) send 4x each workspace's per-minute limit inside one minute window: exactly
    the limit is accepted per workspace, the rest answered 429, and every 2xx counted once. ``size.rate`` above
    1,000 adds the team plan (3,000/min: 12,000 requests in the window)."""
    started = time.monotonic()
    plans = [p for p in PLAN_RATE_LIMITS if p != "team" or size.rate > 1_000]
    urls = urls_of(stack)
    token = operator_token(stack.config)
    async with loadgen.client(80) as http:
        run = Run(stack, http, urls, size)
        workspaces = {}
        for plan in plans:
            limits = {"rateLimitPerMinute": PLAN_RATE_LIMITS[plan]} if plan == "enterprise" else None
            [workspaces[plan]] = await loadgen.create_workspaces(http, urls, token, 1, plan, limits)
        before = await loadgen.gateway_rejections(http, urls.gateway)
        await asyncio.sleep(60 - time.time() % 60 + 0.5)  # the start of a fresh minute window
        window_end = (time.time() // 60 + 1) * 60
        sent = await asyncio.gather(
            *(
                loadgen.send(
                    urls.gateway,
                    [workspaces[plan]],
                    rate=OVER_LIMIT * PLAN_RATE_LIMITS[plan] // size.duration_s,
                    duration_s=size.duration_s,
                    clients=CLIENTS_PER_PLAN,
                    repeat_every=None,
                )
                for plan in plans
            )
        )
        overran = time.time() - window_end
        answers = [a for per_plan in sent for a in per_plan]
        scenario = Scenario(
            "over-the-limit",
            f"{CLIENTS_PER_PLAN * len(plans)} clients at {OVER_LIMIT}x the per-minute limit of "
            + ", ".join(f"{p} ({PLAN_RATE_LIMITS[p]})" for p in plans),
            _no_fault,
        )
        outcome = await judge(run, scenario, size, list(workspaces.values()), answers, before, None, started)
    if overran > 0:
        outcome.problems.append(f"the load overran its minute window by {overran:.1f} s: limits not comparable")
    for plan, per_plan in zip(plans, sent, strict=True):
        accepted = sum(1 for a in per_plan if 200 <= a.status < 300)
        if accepted != PLAN_RATE_LIMITS[plan]:
            outcome.problems.append(f"{plan}: {accepted} accepted, the limit is {PLAN_RATE_LIMITS[plan]}")
    outcome.load = f"{len(answers):,} requests in {size.duration_s} s (one minute window), {len(plans)} workspaces"
    return outcome


async def _no_fault(_run: Run) -> None:
    return None


CANARY_FIELDS = ("prompt", "completion", "messages")
"""Where a careless integration puts the prompt: the gateway drops such fields (ADR 55) and the event counts."""


async def _all_topic_bytes(bootstrap: str) -> list[bytes]:
    """Key, value and headers of every record of every topic, from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in sorted(await consumer.topics())
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: list[bytes] = []
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=300)
            idle = 0 if any(batch.values()) else idle + 1
            for records in batch.values():
                for r in records:
                    found += [r.key or b"", r.value or b"", *(v for _, v in r.headers)]
        return found
    finally:
        await consumer.stop()


def _files_bytes(root: Path) -> list[bytes]:
    return [f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()] if root.exists() else []


def _clickhouse_rows(data_dir: Path) -> list[bytes]:
    """Every row of every table of the embedded ClickHouse as text (the stack stopped: chDB is free)."""
    client = clickhouse_connect.get_client(dsn=f"chdb://{data_dir / 'clickhouse'}")
    try:
        tables = client.query(
            "SELECT database, name FROM system.tables WHERE database NOT IN "
            "('system', 'INFORMATION_SCHEMA', 'information_schema') AND engine NOT IN ('View', 'MaterializedView')"
        ).result_rows
        return [
            client.raw_query(f"SELECT * FROM `{db}`.`{table}` FORMAT TSV")  # noqa: S608 - names from system.tables
            for db, table in tables
        ]
    finally:
        client.close()


async def canary(stack: Stack, size: Size) -> Outcome:
    """Events carrying a canary prompt text in the fields a careless integration would use, beside a load of
    ordinary events; then the text is searched in every topic, the spool, Redis's append-only file, every
    ClickHouse table and every log. It must be in none."""
    started = time.monotonic()
    text = f"CANARY-PROMPT-{uuid.uuid4().hex}"
    urls = urls_of(stack)
    async with loadgen.client(80) as http:
        run = Run(stack, http, urls, size)
        token = operator_token(stack.config)
        workspaces = await loadgen.create_workspaces(http, urls, token, WORKSPACES, "enterprise", LIMITS)
        before = await loadgen.gateway_rejections(http, urls.gateway)
        load = asyncio.create_task(loadgen.send(urls.gateway, workspaces, rate=size.rate, duration_s=size.duration_s))
        carriers = []
        for i in range(size.rate):
            ws = workspaces[i % len(workspaces)]
            body = {**loadgen.event_body(f"canary_{uuid.uuid4().hex}", i), CANARY_FIELDS[i % 3]: text}
            carriers += await loadgen.post_event(http, urls.gateway, ws, body)
        scenario = Scenario(
            "canary", f"a prompt text in {', '.join(CANARY_FIELDS)} of {len(carriers)} events", _no_fault
        )
        outcome = await judge(run, scenario, size, workspaces, [*await load, *carriers], before, None, started)
        topics = await _all_topic_bytes(stack.config.kafka_bootstrap)
    outcome.load = f"{size.events:,} events at {size.rate}/s over {WORKSPACES} workspaces, {len(carriers)} carriers"
    stop_supervised(stack)
    data = stack.config.data_dir
    places = {
        "topics": topics,
        "spool": _files_bytes(data / "spool"),
        "Redis": _files_bytes(data / "redis"),
        "ClickHouse": await asyncio.to_thread(_clickhouse_rows, data),
        "logs": _files_bytes(data / "logs"),
    }
    needle = text.encode()
    control = carriers[0].external_request_id.encode()
    """Stored with the event, so found where the event is: the search would have seen the canary there."""
    for place, blobs in places.items():
        if not blobs:
            outcome.problems.append(f"nothing read from {place}: the search there proves nothing")
        if place in ("topics", "Redis", "ClickHouse") and not any(control in blob for blob in blobs):
            outcome.problems.append(f"a carrier's externalRequestId not found in {place}: the search is blind there")
        hits = sum(blob.count(needle) for blob in blobs)
        if hits:
            outcome.problems.append(f"the canary found {hits} times in {place}")
    return outcome


VARIANTS = {"starter": 101, "pro": 102, "team": 103, "enterprise": 104}
"""The double's variant ids (``lemonsqueezy_double.VARIANTS``)."""
_LEMONSQUEEZY: list[LemonSqueezyDouble] = []


@contextlib.contextmanager
def _lemonsqueezy() -> Iterator[dict[str, str]]:
    with LemonSqueezyDouble() as double:
        _LEMONSQUEEZY.append(double)
        try:
            yield double.service_env()
        finally:
            _LEMONSQUEEZY.remove(double)


async def webhooks(stack: Stack, size: Size) -> Outcome:
    """``size.rate`` subscriptions, each changed ``size.duration_s`` times at Lemon Squeezy; their deliveries
    permuted, one in five repeated and one in five dropped. Once every delivery was answered, each workspace whose
    newest delivery arrived must be on the newest plan, and after a reconciliation every workspace must be."""
    started = time.monotonic()
    [double] = _LEMONSQUEEZY
    rng = random.Random(size.rate * 1_000 + size.duration_s)
    urls = urls_of(stack)
    billing = stack.config.url("billing")
    operator = {"X-Operator-Token": operator_token(stack.config)}
    async with httpx.AsyncClient(timeout=30) as http:
        created = await loadgen.create_workspaces(http, urls, operator["X-Operator-Token"], size.rate, "starter")
        deliveries: list[tuple[Workspace, bytes, bool]] = []
        newest: dict[str, str] = {}
        for ws in created:
            sub = double.create_subscription(VARIANTS["starter"])
            body = {"workspaceId": ws.workspace_id, "subscriptionId": sub, "plan": "starter"}
            deadline = time.monotonic() + 30
            link = f"{billing}/v1/admin/billing/subscriptions"
            while (await http.post(link, json=body, headers=operator)).status_code != 201:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"billing did not link {sub} to {ws.workspace_id}")
                await asyncio.sleep(0.1)
            for change in range(size.duration_s):
                plan = rng.choice([p for p in VARIANTS if p != newest.get(ws.workspace_id, "starter")])
                double.update(sub, variant_id=VARIANTS[plan])
                newest[ws.workspace_id] = plan
                deliveries.append((ws, double.webhook_body(sub), change == size.duration_s - 1))
        sent: list[tuple[Workspace, bytes, bool]] = []
        for delivery in deliveries:
            roll = rng.random()
            if roll < 0.2:
                continue  # dropped
            sent += [delivery] * (2 if roll > 0.8 else 1)
        rng.shuffle(sent)
        url = f"{billing}/v1/billing/webhooks/lemonsqueezy"
        statuses = Counter(await asyncio.gather(*(asyncio.to_thread(double.deliver, url, body) for _, body, _ in sent)))
        newest_arrived = {ws.workspace_id for ws, _, last in sent if last}

        async def plans() -> dict[str, str]:
            found = {}
            for ws in created:
                answer = await http.get(
                    f"{billing}/v1/workspaces/{ws.workspace_id}/plan",
                    headers={"Authorization": f"Bearer {ws.admin_token}"},
                )
                found[ws.workspace_id] = answer.json()["planTier"]
            return found

        async def settled(ids: set[str]) -> dict[str, str]:
            deadline = time.monotonic() + 60
            while True:
                found = await plans()
                if all(found[i] == newest[i] for i in ids) or time.monotonic() > deadline:
                    await asyncio.sleep(2)
                    return await plans()
                await asyncio.sleep(0.5)

        before = await settled(newest_arrived)
        problems = [
            f"{i}: on {before[i]} after its newest delivery ({newest[i]}) arrived"
            for i in sorted(newest_arrived)
            if before[i] != newest[i]
        ]
        answer = await http.post(f"{billing}/v1/admin/billing/reconcile", headers=operator)
        if answer.status_code != 200:
            problems.append(f"reconcile answered {answer.status_code}: {answer.text}")
        after = await settled(set(newest))
        wrong = [i for i in sorted(newest) if after[i] != newest[i]]
        problems += [
            f"{i}: on {after[i]} after reconciliation, Lemon Squeezy says {newest[i]} "
            f"(its newest delivery {'arrived' if i in newest_arrived else 'was dropped'})"
            for i in wrong
        ]
    return Outcome(
        scenario="webhooks",
        load=f"{size.rate} subscriptions x {size.duration_s} changes: {len(sent)} deliveries of {len(deliveries)}",
        fault="deliveries permuted, 1 in 5 repeated, 1 in 5 dropped; then a reconciliation",
        by_status=dict(sorted(statuses.items())),
        accepted=len(deliveries),
        lost=len(wrong),
        double_counted=0,
        refused_counted=0,
        recover_s=None,
        problems=problems,
        seconds=time.monotonic() - started,
    )


SCENARIOS["webhooks"] = Scenario(
    "webhooks",
    "",
    _no_fault,
    drive=webhooks,
    doubles=_lemonsqueezy,
)
DEFAULT["webhooks"] = Size(rate=10, duration_s=6, stall_s=0)
LONG["webhooks"] = Size(rate=40, duration_s=10, stall_s=0)
SCENARIOS["canary"] = Scenario("canary", "", _no_fault, drive=canary)
DEFAULT["canary"] = Size(rate=60, duration_s=20, stall_s=0)
LONG["canary"] = Size(rate=200, duration_s=60, stall_s=0)
SCENARIOS["over-the-limit"] = Scenario(
    "over-the-limit", "none: a load over the limits", _no_fault, drive=over_the_limit
)
DEFAULT["over-the-limit"] = Size(rate=100, duration_s=30, stall_s=0)
LONG["over-the-limit"] = Size(rate=2_000, duration_s=50, stall_s=0)

ORDER = (
    "broker-stalled",
    "redis-killed",
    "redis-stalled",
    "services-killed",
    "spool-unwritable",
    "over-the-limit",
    "clickhouse-inserts-failing",
    "webhooks",
    "canary",
)
"""The issue's order: the faults that most often happen first."""
SCENARIOS = {name: SCENARIOS[name] for name in ORDER}
