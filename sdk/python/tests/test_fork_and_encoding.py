"""A forked child sends its own records (and never hangs); a record that cannot be encoded is counted, not lost."""

import decimal
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from local_http import Answer, LocalServer, accepted

from opsmeter import Opsmeter


class Gateway(LocalServer):
    """A local ingest endpoint answering 207, every event accepted; it keeps the externalRequestIds it got."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._lock = threading.Lock()
        super().__init__()

    def respond(self, method: str, path: str, body: Any) -> Answer:
        events = body["events"]
        with self._lock:
            self.ids.extend(event["externalRequestId"] for event in events)
        return accepted(events)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway() as running:
        yield running


def record_one(om: Opsmeter, **extra: Any) -> str | None:
    return om.record(provider="openai", model="gpt-4o-mini", input_tokens=812, output_tokens=164, **extra)


def wait_for_child(pid: int, timeout: float) -> int | None:
    """The child's exit code, or None (and the child killed) if it has not exited within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_forked_child_sends_its_records_even_when_the_lock_was_held_at_the_fork(gateway: Gateway) -> None:
    om = Opsmeter("om_live_x_y", base_url=gateway.url, flush_at=100, flush_interval=60, timeout=5)
    try:
        parent_id = record_one(om)  # queued, not yet sent: the parent's to send, not the child's
        holding, release = threading.Event(), threading.Event()

        def hold_the_lock() -> None:  # as the sender thread may be holding it at the moment of a fork
            with om._cond:
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold_the_lock, daemon=True)
        holder.start()
        assert holding.wait(3)
        pid = os.fork()
        if pid == 0:  # the child: record, flush, and say by the exit code whether it was sent
            code = 1
            try:
                child_id = record_one(om)
                sent = om.flush(timeout=5)
                stats = om.stats()
                code = 0 if child_id and sent and stats.accepted == 1 and stats.recorded == 1 else 2
            finally:
                os._exit(code)
        release.set()
        holder.join(3)
        assert wait_for_child(pid, timeout=15) == 0, "the forked child hung or did not send its record"
        assert om.flush(timeout=5)
        assert len(gateway.ids) == 2, gateway.ids
        assert parent_id is not None
        assert gateway.ids.count(parent_id) == 1  # the parent's queued record went once, from the parent
        assert om.stats().accepted == 1
    finally:
        om.shutdown(timeout=1)


def test_a_record_that_cannot_be_encoded_is_dropped_and_counted_and_the_others_are_sent(gateway: Gateway) -> None:
    om = Opsmeter("om_live_x_y", base_url=gateway.url, flush_interval=60, timeout=5)
    try:
        good = [record_one(om, latency_ms=n) for n in range(3)]
        assert record_one(om, metadata={"order": uuid.uuid4()}) is None
        assert record_one(om, metadata={"amount": decimal.Decimal("1.5")}) is None
        assert record_one(om, metadata={"ratio": float("nan")}) is None  # not JSON: the gateway would refuse it
        good.append(record_one(om, metadata={"order": "A-1"}))
        assert om.flush(timeout=5), om.stats()
        assert gateway.ids == good
        stats = om.stats()
        assert (stats.recorded, stats.accepted, stats.dropped) == (7, 4, {"unencodable": 3}), stats
    finally:
        om.shutdown(timeout=1)


def test_a_batch_that_fails_for_a_reason_other_than_the_network_is_counted_as_dropped() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.InvalidURL("no such URL")  # not an httpx.HTTPError

    om = Opsmeter("om_live_x_y", base_url="http://ingest.invalid", transport=httpx.MockTransport(broken), timeout=1)
    try:
        for n in range(3):
            record_one(om, latency_ms=n)
        assert om.flush(timeout=5), om.stats()
        stats = om.stats()
        assert (stats.recorded, stats.accepted, stats.dropped) == (3, 0, {"client_error": 3}), stats
    finally:
        om.shutdown(timeout=1)
