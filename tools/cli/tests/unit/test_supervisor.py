"""The supervisor's rules, on real child processes (``sleep`` and ``sh`` stand in for the services)."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmeter_cli.stack import BrokerExited, Stack, StackConfig
from opsmeter_runtime.localstack import ManagedProcess, RestartBackoff


def child(tmp_path: Path, name: str, *argv: str) -> ManagedProcess:
    return ManagedProcess(name=name, argv=list(argv), log_path=tmp_path / f"{name}.log").start()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(StackConfig(tmp_path, 0, 0, {}))
    running.processes = {
        "broker": child(tmp_path, "broker", "sleep", "60"),
        "redis": child(tmp_path, "redis", "sleep", "60"),
        "reporting": child(tmp_path, "reporting", "sleep", "60"),
    }
    yield running
    running.stop()


def supervise_until(stack: Stack, done: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        stack.supervise()
        time.sleep(0.02)


class TestSupervise:
    def test_a_killed_service_is_restarted_and_counted(self, stack: Stack) -> None:
        killed = stack.pids()["reporting"]
        os.kill(killed, signal.SIGKILL)
        supervise_until(stack, lambda: stack.pids()["reporting"] != killed and stack.processes["reporting"].alive())
        assert stack.restarts() == {"broker": 0, "redis": 0, "reporting": 1}
        assert stack.processes["broker"].alive()
        assert stack.processes["redis"].alive()

    def test_redis_is_restarted_too_and_the_broker_is_left_alone(self, stack: Stack) -> None:
        broker = stack.pids()["broker"]
        os.kill(stack.pids()["redis"], signal.SIGKILL)
        supervise_until(stack, lambda: stack.restarts()["redis"] == 1 and stack.processes["redis"].alive())
        assert stack.pids()["broker"] == broker

    def test_a_crash_loop_backs_off(self, stack: Stack, tmp_path: Path) -> None:
        stack.processes["reporting"].stop()
        stack.processes["reporting"] = child(tmp_path, "reporting", "sh", "-c", "exit 3")
        stack.backoff["reporting"] = RestartBackoff(first_s=0.1, max_s=0.4)
        started = time.monotonic()
        supervise_until(stack, lambda: stack.restarts()["reporting"] >= 5)
        # 0.1 + 0.2 + 0.4 + 0.4 before the fifth exit is counted: never a busy loop of restarts.
        assert time.monotonic() - started >= 1.0

    def test_the_broker_s_death_ends_the_stack(self, stack: Stack) -> None:
        os.kill(stack.pids()["broker"], signal.SIGKILL)
        with pytest.raises(BrokerExited, match="in memory"):
            supervise_until(stack, lambda: False)
