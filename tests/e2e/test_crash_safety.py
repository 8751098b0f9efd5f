"""Crash safety: a killed service comes back on its own, a stalled Redis dead-letters nothing, and a
dead letter replays once.

These tests kill and stall processes, so they run the real supervisor (``opsmeter stack up``) on a stack
of their own and drive it through the CLI, as an operator would.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opsmeter_cli.main import app
from opsmeter_cli.stack import SERVICES, StackConfig, operator_token, read_state
from opsmeter_contracts import LlmRequestIngested, LlmRequestIngestedPayload, encode_event
from opsmeter_contracts.topics import Topics
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.localstack import free_port
from opsmeter_runtime.settings import RuntimeSettings
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY, selected_backend

OPSMETER = str(Path(sys.executable).parent / "opsmeter")
TELEMETRY_DLQ = Topics.TELEMETRY.dead_letter


@dataclass(frozen=True)
class SupervisedStack:
    env: dict[str, str]
    config: StackConfig

    def stack_command(self, *args: str) -> None:
        """``opsmeter stack up|down``: the supervisor runs as its own process, as after ``make up``."""
        done = subprocess.run(
            [OPSMETER, "stack", *args], env={**os.environ, **self.env}, capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, f"opsmeter stack {' '.join(args)}: {done.stdout}\n{done.stderr}"

    def cli(self, *args: str) -> str:
        """The other commands in this process (the CLI's import alone takes seconds on a busy machine)."""
        result = CliRunner().invoke(app, list(args), env=self.env)
        assert result.exit_code == 0, f"opsmeter {' '.join(args)}: {result.output}"
        return result.stdout

    def pid(self, name: str) -> int:
        state = read_state(self.config) or {}
        pid: int = state["pids"][name]  # type: ignore[index]
        return pid

    def dead_letters(self, workspace_id: str) -> list[dict[str, Any]]:
        lines = self.cli("dlq", "list", "--topic", TELEMETRY_DLQ, "--json").splitlines()
        return [letter for letter in map(json.loads, lines) if letter["key"] == workspace_id]

    def url(self, service: str) -> str:
        return self.config.url(service)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedStack]:
    if selected_backend() != "local":
        pytest.skip("crash tests kill and stall the local stack's processes; they run in the local mode")
    data_dir = tmp_path_factory.mktemp("crash")
    ports = {s.name: free_port() for s in SERVICES}
    config = StackConfig(data_dir, free_port(), free_port(), ports)
    env = {
        "OPSMETER_DATA_DIR": str(data_dir),
        "OPSMETER_ENV": "test",
        "OPSMETER_LOG_LEVEL": "WARNING",
        "OPSMETER_BROKER_PORT": str(config.broker_port),
        "OPSMETER_REDIS_PORT": str(config.redis_port),
        **{f"{s.env_prefix}PORT": str(ports[s.name]) for s in SERVICES},
    }
    stack = SupervisedStack(env, config)
    stack.stack_command("up")
    try:
        yield stack
    finally:
        for name in ("redis", *ports):
            with contextlib.suppress(ProcessLookupError, KeyError, TypeError):
                os.kill(stack.pid(name), signal.SIGCONT)
        stack.stack_command("down")


@dataclass
class Workspace:
    stack: SupervisedStack
    created: dict[str, Any]
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def id(self) -> str:
        workspace_id: str = self.created["workspaceId"]
        return workspace_id

    def send(self) -> int:
        body = {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}"}
        answer = self.client.post(
            f"{self.stack.url('ingest-gateway')}/v1/ingest/llm-request",
            json=body,
            headers={"X-API-Key": self.created["apiKey"]},
        )
        return answer.status_code

    def _get(self, service: str, path: str) -> dict[str, Any] | None:
        try:
            answer = self.client.get(
                f"{self.stack.url(service)}/v1/workspaces/{self.id}/{path}",
                headers={"Authorization": f"Bearer {self.created['adminToken']}"},
            )
        except httpx.TransportError:
            return None
        body: dict[str, Any] = answer.json()
        return body if answer.status_code == 200 else None

    def usage(self) -> int | None:
        body = self._get("reporting", "usage")
        return None if body is None else int(body["totals"]["requests"])

    def spend(self) -> int | None:
        body = self._get("policy-engine", "spend")
        return None if body is None else int(body["daily"]["currentSpendMicroUsd"])

    def quota(self) -> int:
        status = self.client.get(
            f"{self.stack.url('ingest-gateway')}/v1/diagnostics/workspace-status",
            headers={"X-API-Key": self.created["apiKey"]},
        ).json()
        count: int = status["plan"]["currentRequestCount"]
        return count


def workspace(stack: SupervisedStack) -> Workspace:
    answer = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/admin/workspaces",
        json={"name": "crash", "plan": "enterprise", "rateLimitPerMinute": 1_000_000, "monthlyRequestQuota": 10**7},
        headers={"X-Operator-Token": operator_token(stack.config)},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return Workspace(stack, answer.json())


def eventually(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.2)


def one_event_cost(ws: Workspace) -> int:
    """Send one event and read what it adds to spend (every test event has the same body)."""
    assert ws.send() == 202
    eventually(lambda: (ws.spend() or 0) > 0 and ws.usage() == 1, 30, "the first event counted")
    cost = ws.spend()
    assert cost is not None
    return cost


class Load(threading.Thread):
    """Send ``total`` events at about ``rate`` per second; count the 202s."""

    def __init__(self, ws: Workspace, total: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.ws, self.total, self.rate = ws, total, rate
        self.statuses: list[int] = []

    def run(self) -> None:
        started = time.monotonic()
        for n in range(self.total):
            time.sleep(max(0.0, started + n / self.rate - time.monotonic()))
            self.statuses.append(self.ws.send())

    @property
    def accepted(self) -> int:
        return self.statuses.count(202)


def restarted(stack: SupervisedStack, service: str, old_pid: int) -> bool:
    if stack.pid(service) == old_pid:
        return False
    try:
        return httpx.get(f"{stack.url(service)}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


class TestKilledService:
    def test_kill_9_of_reporting_and_policy_engine_under_load_loses_nothing_and_both_come_back(
        self, supervised: SupervisedStack
    ) -> None:
        ws = workspace(supervised)
        cost = one_event_cost(ws)
        load = Load(ws, total=2400, rate=250)
        load.start()
        killed: dict[str, int] = {}
        for service, at in (("reporting", 300), ("policy-engine", 900)):
            eventually(lambda at=at: len(load.statuses) >= at, 60, f"{at} events sent")
            killed[service] = supervised.pid(service)
            os.kill(killed[service], signal.SIGKILL)
        for service, pid in killed.items():
            eventually(lambda s=service, p=pid: restarted(supervised, s, p), 60, f"{service} restarted")
        load.join(120)
        assert len(load.statuses) == load.total
        assert load.accepted == load.total, f"the gateway refused {load.total - load.accepted} events"
        expected = 1 + load.accepted
        eventually(lambda: ws.usage() == expected, 60, f"usage == {expected}")
        eventually(lambda: ws.spend() == expected * cost, 60, f"spend == {expected} x {cost}")
        assert ws.quota() == expected
        time.sleep(1)
        assert (ws.usage(), ws.spend()) == (expected, expected * cost)  # and nothing counted twice

        status = json.loads(supervised.cli("stack", "status", "--json"))["processes"]
        assert {name: p["restarts"] for name, p in status.items()} == {
            name: 1 if name in killed else 0 for name in status
        }
        assert all(p["running"] for p in status.values())
        shown = {line.split()[0]: line for line in supervised.cli("stack", "status").splitlines()[1:]}
        assert shown["reporting"].endswith("running  restarts 1")
        assert shown["billing"].endswith("running  restarts 0")
        log = (supervised.config.data_dir / "logs" / "stack.log").read_text()
        restarts = [json.loads(line) for line in log.splitlines() if '"service_restarted"' in line]
        assert {(r["child"], r["restarts"]) for r in restarts} == {("reporting", 1), ("policy-engine", 1)}
        assert supervised.dead_letters(ws.id) == []


class TestRedisStalled:
    def test_a_15_s_redis_stall_dead_letters_nothing_and_spend_ends_exact(self, supervised: SupervisedStack) -> None:
        ws = workspace(supervised)
        cost = one_event_cost(ws)
        redis_pid = supervised.pid("redis")
        load = Load(ws, total=300, rate=20)
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            load.start()
            time.sleep(15)
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        load.join(120)
        assert len(load.statuses) == load.total
        expected = 1 + load.accepted
        assert load.accepted > 0
        eventually(lambda: ws.spend() == expected * cost, 90, f"spend == {expected} x {cost}")
        eventually(lambda: ws.usage() == expected, 60, f"usage == {expected}")
        assert supervised.dead_letters(ws.id) == []
        assert supervised.pid("redis") == redis_pid  # stalled, not restarted
        policy_log = (supervised.config.data_dir / "logs" / "policy-engine.log").read_text()
        assert '"handler_transient_failure"' in policy_log  # the stall did reach the consumer, which held


class TestDeadLetters:
    def test_poison_is_dead_lettered_and_a_replayed_dead_letter_counts_once(self, supervised: SupervisedStack) -> None:
        ws = workspace(supervised)
        cost = one_event_cost(ws)
        settings = RuntimeSettings(kafka_bootstrap=supervised.config.kafka_bootstrap)
        lost = LlmRequestIngested.new(
            ws.id,
            LlmRequestIngestedPayload(
                external_request_id="req_lost_in_a_stall",
                provider="openai",
                model="gpt-4o-mini",
                model_normalized="gpt-4o-mini",
                endpoint_tag="checkout.ai_summary",
                user_id="u_5f2c",
                input_tokens=812,
                output_tokens=164,
                total_tokens=976,
                cost_micro_usd=cost,
                priced=True,
                price_catalog_version="test",
                api_key_id="key_test",
            ),
        )

        async def publish() -> None:
            publisher = EventPublisher(settings, client_id="test")
            await publisher.start()
            try:
                await publisher.publish_raw(Topics.TELEMETRY, ws.id.encode(), b"\x00not an event")
                # How the old engine left an event a Redis stall made fail: one dead letter per group.
                for group in ("policy-engine.telemetry", "reporting.sink"):
                    headers = [
                        ("x-error", b"Timeout reading from socket"),
                        ("x-error-type", b"TimeoutError"),
                        ("x-original-topic", Topics.TELEMETRY.value.encode()),
                        ("x-original-partition", b"0"),
                        ("x-original-offset", b"987654"),
                        ("x-consumer-group", group.encode()),
                    ]
                    await publisher.publish_raw(TELEMETRY_DLQ, ws.id.encode(), encode_event(lost), headers)
            finally:
                await publisher.stop()

        asyncio.run(publish())
        eventually(
            lambda: any(letter["failure"] == "poison" for letter in supervised.dead_letters(ws.id)),
            30,
            "the undecodable record in the dead-letter topic",
        )
        poison = [letter for letter in supervised.dead_letters(ws.id) if letter["failure"] == "poison"]
        assert {letter["errorType"] for letter in poison} == {"DecodeError"}
        assert {letter["eventId"] for letter in poison} == {None}
        assert ws.usage() == 1
        listed = supervised.cli("dlq", "list", "--topic", Topics.TELEMETRY, "--pending")
        assert any("pending" in line and "poison" in line and "DecodeError" in line for line in listed.splitlines())

        replay = json.loads(supervised.cli("dlq", "replay", "--topic", TELEMETRY_DLQ, "--json"))
        assert replay["replayed"] == 2  # the lost event once (it had two dead letters), the poison record once
        eventually(lambda: ws.usage() == 2, 30, "the replayed event in usage")
        eventually(lambda: ws.spend() == 2 * cost, 30, "the replayed event in spend")
        lost_letters = [letter for letter in supervised.dead_letters(ws.id) if letter["eventId"] == str(lost.event_id)]
        assert [letter["status"] for letter in lost_letters] == ["replayed", "replayed"]

        # Replaying it again on purpose changes nothing: the handlers dedupe by event id. The next event of
        # the workspace is behind it on the same partition, so once that one counts, the replay was handled.
        forced = f"{lost_letters[0]['partition']}:{lost_letters[0]['offset']}"
        again = json.loads(supervised.cli("dlq", "replay", "--topic", TELEMETRY_DLQ, "--offset", forced, "--json"))
        assert again["replayed"] == 1
        assert ws.send() == 202
        eventually(lambda: ws.usage() == 3 and ws.spend() == 3 * cost, 30, "the next event counted")
        time.sleep(1)
        assert (ws.usage(), ws.spend()) == (3, 3 * cost)
