"""``opsmeter loadgen``: a bounded load on the local gateway, and an oracle over every answer it got.

Each request's answer is logged (workspace, externalRequestId, status, reason, eventId, costUsd, duplicate). After
the run the log is compared with what the system says: reporting's ``/usage`` (requests, micro-USD), the policy
engine's spend, the gateway's plan counter, and the gateway's per-reason counters. Every 2xx must be counted once,
to the micro-dollar, and every rejection once under its reason. It sends only to loopback addresses.
"""

import asyncio
import ipaddress
import json
import random
import re
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_RATE = 2_000
MAX_DURATION_S = 300
MAX_WORKSPACES = 50
REPEAT_EVERY = 20
"""Every 20th request repeats an earlier externalRequestId of its workspace: answered as a duplicate, counted once."""
MICRO = Decimal(1_000_000)
NO_ANSWER = 0
"""The status logged for a request that never got an answer (the gateway down past the retry time)."""
_EVENTS_METRIC = re.compile(r"^opsmeter_ingest_(?:events|rejected_requests)_total\{([^}]*)\} ([0-9.e+]+)$")
_REASON = re.compile(r'reason="([^"]*)"')


class LoadgenError(Exception):
    """A setting out of bounds, a target that is not loopback, or a stack that does not answer."""


@dataclass(frozen=True)
class Answer:
    """One line of the answer log."""

    workspace_id: str
    external_request_id: str
    status: int
    reason: str | None
    event_id: str | None
    cost_micro_usd: int | None
    duplicate: bool
    attempt: int = 1
    """Which send of its request this answers: a request answered 503 is sent again (as an SDK does)."""


@dataclass(frozen=True)
class Expected:
    """What one workspace's answers say the system must now hold."""

    events: int
    cost_micro_usd: int
    rejections: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Observed:
    """What the system holds for one workspace."""

    usage_requests: int
    usage_cost_micro_usd: int
    policy_spend_micro_usd: int
    plan_requests: int


def check_target(url: str) -> None:
    """Refuse any gateway that is not on this machine's loopback."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoadgenError(f"the gateway must be a loopback address (127.0.0.0/8, ::1, localhost), not {host!r}")


def check_bounds(rate: int, duration_s: int, workspaces: int) -> None:
    for name, value, top in (
        ("--rate", rate, MAX_RATE),
        ("--duration", duration_s, MAX_DURATION_S),
        ("--workspaces", workspaces, MAX_WORKSPACES),
    ):
        if not 1 <= value <= top:
            raise LoadgenError(f"{name} must be between 1 and {top} (got {value})")


def micro_usd(value: str) -> int:
    """An exact decimal USD string as integer micro-USD; refuses a fraction of a micro-dollar."""
    micro = Decimal(value) * MICRO
    if micro != micro.to_integral_value():
        raise LoadgenError(f"costUsd {value!r} is not a whole number of micro-USD")
    return int(micro)


def expected_from(answers: Iterable[Answer]) -> dict[str, Expected]:
    """Per workspace: distinct accepted events and their cost (first answers only), rejections by reason."""
    events: dict[str, dict[str, int]] = {}
    rejections: dict[str, Counter[str]] = {}
    for a in answers:
        events.setdefault(a.workspace_id, {})
        rejections.setdefault(a.workspace_id, Counter())
        if 200 <= a.status < 300:
            if a.event_id is None or a.cost_micro_usd is None:
                raise LoadgenError(f"a {a.status} for {a.external_request_id} has no eventId or costUsd")
            first = events[a.workspace_id].setdefault(a.event_id, a.cost_micro_usd)
            if first != a.cost_micro_usd:
                raise LoadgenError(f"event {a.event_id} was answered with two costs")
        elif a.status != NO_ANSWER:
            rejections[a.workspace_id][a.reason or f"http_{a.status}"] += 1
    return {ws: Expected(len(ids), sum(ids.values()), rejections[ws]) for ws, ids in sorted(events.items())}


def mismatches(expected: dict[str, Expected], observed: dict[str, Observed]) -> list[str]:
    """Each way the system disagrees with the answer log, in words; empty when it agrees exactly."""
    found = []
    for ws, want in expected.items():
        got = observed[ws]
        for what, have, should in (
            ("/usage requests", got.usage_requests, want.events),
            ("/usage micro-USD", got.usage_cost_micro_usd, want.cost_micro_usd),
            ("policy engine spend micro-USD", got.policy_spend_micro_usd, want.cost_micro_usd),
            ("plan counter", got.plan_requests, want.events),
        ):
            if have != should:
                found.append(f"{ws}: {what} {have}, answers say {should}")
    return found


def rejection_mismatches(expected: dict[str, Expected], counted: Counter[str]) -> list[str]:
    """The gateway's per-reason counters (their increase over the run) against the rejections answered."""
    answered: Counter[str] = Counter()
    for want in expected.values():
        answered.update(want.rejections)
    return [
        f"rejections {reason}: gateway counted {counted.get(reason, 0)}, answers say {answered.get(reason, 0)}"
        for reason in sorted(set(answered) | set(counted))
        if counted.get(reason, 0) != answered.get(reason, 0)
    ]


def _body(external_request_id: str, rng: random.Random) -> dict[str, Any]:
    return {
        "externalRequestId": external_request_id,
        "provider": "openai",
        "model": rng.choice(["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"]),
        "endpointTag": rng.choice(["checkout.ai_summary", "search.rerank", "support.reply"]),
        "userId": f"u_{rng.randrange(50)}",
        "inputTokens": rng.randrange(1, 4_000),
        "outputTokens": rng.randrange(0, 1_000),
        "latencyMs": rng.randrange(50, 3_000),
    }


@dataclass(frozen=True)
class Workspace:
    workspace_id: str
    api_key: str
    admin_token: str


@dataclass
class Urls:
    gateway: str
    reporting: str
    policy: str
    billing: str


async def create_workspaces(
    http: httpx.AsyncClient,
    urls: Urls,
    operator_token: str,
    count: int,
    plan: str,
    limits: dict[str, int] | None = None,
) -> list[Workspace]:
    """``count`` new workspaces on ``plan`` (``limits``: the admin API's overrides, e.g. ``rateLimitPerMinute``),
    returned once billing has projected the plan (limits then apply)."""
    created = []
    for i in range(count):
        answer = await http.post(
            f"{urls.gateway}/v1/admin/workspaces",
            json={"name": f"loadgen {i}", "plan": plan, **(limits or {})},
            headers={"X-Operator-Token": operator_token},
        )
        if answer.status_code != 201:
            raise LoadgenError(f"creating a workspace answered {answer.status_code}: {answer.text}")
        body = answer.json()
        created.append(Workspace(body["workspaceId"], body["apiKey"], body["adminToken"]))
    deadline = time.monotonic() + 30
    for ws in created:
        while True:
            plan_answer = await http.get(f"{urls.billing}/v1/workspaces/{ws.workspace_id}/plan", headers=_bearer(ws))
            if plan_answer.status_code == 200 and plan_answer.json()["planTier"] == plan:
                break
            if time.monotonic() > deadline:
                raise LoadgenError(f"billing did not project the {plan} plan of {ws.workspace_id}")
            await asyncio.sleep(0.05)
    return created


_TLS = ssl.create_default_context()
"""One TLS context for every client: httpx builds one per client otherwise (~25 ms of CPU loading the CA
bundle), which held 64 clients' first requests ~1.7 s behind their schedule (the target is plain HTTP)."""


def client(connections: int, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """An httpx client that keeps all of its ``connections`` alive (httpx keeps 20 by default and reconnects
    the others for every request)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=timeout_s, limits=limits, verify=_TLS)


def _bearer(ws: Workspace) -> dict[str, str]:
    return {"Authorization": f"Bearer {ws.admin_token}"}


async def send(
    gateway: str,
    workspaces: Sequence[Workspace],
    *,
    rate: int,
    duration_s: int,
    seed: int = 0,
    clients: int = 64,
    retry_for_s: float = 0.0,
    repeat_every: int | None = REPEAT_EVERY,
    timeout_s: float = 30.0,
) -> list[Answer]:
    """``rate × duration_s`` requests paced evenly, round-robin over the workspaces; every answer, in order sent.

    Every ``repeat_every``-th request repeats an earlier one of its workspace. ``clients`` requests are in flight
    at most. A request that gets no answer (connection refused or cut) or a 503 is sent again with the same body,
    as an SDK would, for up to ``retry_for_s`` seconds (every answer logged); one that never gets an answer is
    logged with status 0.

    Each client has a connection of its own (its own httpx client): one pool shared by every client costs
    httpcore an O(connections) pass per request and more while requests queue, which made the load generator,
    not the stack, the bottleneck at a few hundred requests/s.
    """
    rng = random.Random(seed)
    total = rate * duration_s
    sent: dict[str, list[dict[str, Any]]] = {ws.workspace_id: [] for ws in workspaces}
    plan: list[tuple[Workspace, dict[str, Any]]] = []
    for i in range(total):
        ws = workspaces[i % len(workspaces)]
        earlier = sent[ws.workspace_id]
        if repeat_every and i % repeat_every == repeat_every - 1 and earlier:
            body = rng.choice(earlier)
        else:
            body = _body(f"lg_{uuid.uuid4().hex}", rng)
            earlier.append(body)
        plan.append((ws, body))
    answers: list[list[Answer]] = [[] for _ in range(total)]
    start = time.monotonic()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        async with client(1, timeout_s) as http:
            while not queue.empty():
                i = queue.get_nowait()
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                ws, body = plan[i]
                answers[i] = await post_event(http, gateway, ws, body, retry_for_s=retry_for_s)

    await asyncio.gather(*(worker() for _ in range(min(clients, total))))
    return [a for sent_once in answers for a in sent_once]


async def post_event(
    http: httpx.AsyncClient, gateway: str, ws: Workspace, body: dict[str, Any], *, retry_for_s: float = 0.0
) -> list[Answer]:
    """One event sent, and sent again unchanged, as an SDK does, while it gets no answer or a 503 (after its
    ``Retry-After``), for up to ``retry_for_s`` seconds; every answer it got, the final one last."""
    deadline = time.monotonic() + retry_for_s
    answers: list[Answer] = []
    while True:
        try:
            answer = await http.post(f"{gateway}/v1/ingest/llm-request", json=body, headers={"X-API-Key": ws.api_key})
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                if retry_for_s == 0:
                    raise
                attempt = len(answers) + 1
                return [
                    *answers,
                    Answer(ws.workspace_id, body["externalRequestId"], NO_ANSWER, None, None, None, False, attempt),
                ]
            await asyncio.sleep(0.2)
            continue
        answers.append(_answer(ws.workspace_id, body["externalRequestId"], answer, attempt=len(answers) + 1))
        left = deadline - time.monotonic()
        if answer.status_code != 503 or left <= 0:
            return answers
        await asyncio.sleep(min(left, float(answer.headers.get("Retry-After", "1"))))


def event_body(external_request_id: str, seed: int = 0) -> dict[str, Any]:
    """A valid event body like the load's, with the given externalRequestId."""
    return _body(external_request_id, random.Random(seed))


def write_log(path: Path, answers: Sequence[Answer]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(asdict(a)) + "\n" for a in answers))


def _answer(workspace_id: str, external_request_id: str, answer: httpx.Response, *, attempt: int = 1) -> Answer:
    try:
        body = answer.json()
    except ValueError:
        body = {}
    cost = body.get("costUsd")
    return Answer(
        workspace_id=workspace_id,
        external_request_id=external_request_id,
        status=answer.status_code,
        reason=body.get("reason"),
        event_id=body.get("eventId"),
        cost_micro_usd=None if cost is None else micro_usd(cost),
        duplicate=bool(body.get("duplicate", False)),
        attempt=attempt,
    )


async def observe(http: httpx.AsyncClient, urls: Urls, ws: Workspace) -> Observed:
    usage = (await http.get(f"{urls.reporting}/v1/workspaces/{ws.workspace_id}/usage", headers=_bearer(ws))).json()
    spend = (await http.get(f"{urls.policy}/v1/workspaces/{ws.workspace_id}/spend", headers=_bearer(ws))).json()
    status = (
        await http.get(f"{urls.gateway}/v1/diagnostics/workspace-status", headers={"X-API-Key": ws.api_key})
    ).json()
    return Observed(
        usage_requests=int(usage["totals"]["requests"]),
        usage_cost_micro_usd=int(usage["totals"]["costMicroUsd"]),
        policy_spend_micro_usd=int(spend["monthly"]["currentSpendMicroUsd"]),
        plan_requests=int(status["plan"]["currentRequestCount"]),
    )


async def gateway_rejections(http: httpx.AsyncClient, gateway: str) -> Counter[str]:
    """The gateway's rejections by reason (``/metrics``): events refused one by one, and requests refused as a
    whole before their events were decided (an API key that cannot be checked while Redis is away, a full
    spool); the load sends one event per request, so each of those is one event refused."""
    counted: Counter[str] = Counter()
    for line in (await http.get(f"{gateway}/metrics")).text.splitlines():
        match = _EVENTS_METRIC.match(line)
        reason = _REASON.search(match.group(1)) if match else None
        if match and reason and reason.group(1) != "accepted":
            counted[reason.group(1)] += int(float(match.group(2)))
    return counted


@dataclass
class Report:
    answers: int
    by_status: dict[int, int]
    expected: dict[str, Expected]
    observed: dict[str, Observed]
    problems: list[str]
    seconds_to_agree: float | None

    def lines(self) -> list[str]:
        accepted = sum(e.events for e in self.expected.values())
        cost = sum(e.cost_micro_usd for e in self.expected.values())
        rejected: Counter[str] = Counter()
        for e in self.expected.values():
            rejected.update(e.rejections)
        out = [
            f"answers   {self.answers}  by status {dict(sorted(self.by_status.items()))}",
            f"accepted  {accepted} distinct events, {cost} micro-USD",
            f"rejected  {dict(sorted(rejected.items())) or 'none'}",
        ]
        if self.problems:
            out += ["MISMATCH", *(f"  {p}" for p in self.problems)]
        else:
            out.append(
                f"exact: /usage, policy spend, plan counters and rejection counters agree with every answer "
                f"({self.seconds_to_agree:.1f} s after the last answer)"
            )
        return out


async def run(
    urls: Urls,
    operator_token: str,
    *,
    rate: int,
    duration_s: int,
    workspaces: int,
    plan: str,
    log_path: Path,
    settle_timeout_s: float,
) -> Report:
    check_target(urls.gateway)
    check_bounds(rate, duration_s, workspaces)
    async with client(8) as http:
        created = await create_workspaces(http, urls, operator_token, workspaces, plan)
        before = await gateway_rejections(http, urls.gateway)
        answers = await send(urls.gateway, created, rate=rate, duration_s=duration_s)
        done = time.monotonic()
        await asyncio.to_thread(write_log, log_path, answers)
        expected = expected_from(answers)
        counted = await gateway_rejections(http, urls.gateway)
        counted.subtract(before)
        problems = rejection_mismatches(expected, +counted)
        while True:
            observed = {ws.workspace_id: await observe(http, urls, ws) for ws in created}
            found = mismatches(expected, observed)
            if not found or time.monotonic() - done > settle_timeout_s:
                break
            await asyncio.sleep(0.5)
        return Report(
            answers=len(answers),
            by_status=dict(Counter(a.status for a in answers)),
            expected=expected,
            observed=observed,
            problems=problems + found,
            seconds_to_agree=None if found else time.monotonic() - done,
        )
