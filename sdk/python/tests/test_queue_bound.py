"""The bounded record queue (SPEC §12): a stalled gateway never blocks record(); a full queue drops the oldest."""

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from local_http import Answer, LocalServer, accepted

import opsmeter.client
from opsmeter import Opsmeter

MAX_QUEUE = 50


class StalledGateway(LocalServer):
    """A local ingest endpoint that takes every batch but answers none until ``release()``; then 207, all accepted."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []  # the externalRequestIds of each POST, in arrival order
        self._arrived = threading.Condition()
        self._released = threading.Event()
        super().__init__()

    def respond(self, method: str, path: str, body: Any) -> Answer:
        events = body["events"]
        with self._arrived:
            self.batches.append([event["externalRequestId"] for event in events])
            self._arrived.notify_all()
        self._released.wait(10)
        return accepted(events)

    def wait_for_batches(self, count: int, timeout: float = 3.0) -> None:
        with self._arrived:
            assert self._arrived.wait_for(lambda: len(self.batches) >= count, timeout), self.batches

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._released.set()
        super().close()


@pytest.fixture
def gateway() -> Iterator[StalledGateway]:
    with StalledGateway() as stalled:
        yield stalled


def client(url: str, **options: Any) -> Opsmeter:
    # flush_at == the queue size and a long interval: the sender wakes exactly when the 50th record is queued
    return Opsmeter(
        "om_live_x_y",
        base_url=url,
        max_queue_size=MAX_QUEUE,
        flush_at=MAX_QUEUE,
        flush_interval=60,
        timeout=10,
        **options,
    )


def record_one(om: Opsmeter, n: int) -> str | None:
    return om.record(provider="openai", model="gpt-4o-mini", input_tokens=812, output_tokens=164, latency_ms=n)


class TestQueueBound:
    def test_a_stalled_gateway_never_blocks_record_and_the_oldest_records_are_dropped(
        self, gateway: StalledGateway
    ) -> None:
        om = client(gateway.url)
        try:
            in_flight = [record_one(om, n) for n in range(MAX_QUEUE)]
            gateway.wait_for_batches(1)  # the sender now holds one batch of 50 the gateway does not answer
            assert gateway.batches == [in_flight]
            ids: list[str | None] = []
            slowest = 0.0
            for n in range(5 * MAX_QUEUE):
                started = time.perf_counter()
                ids.append(record_one(om, n))
                slowest = max(slowest, time.perf_counter() - started)
                assert om.stats().queue_depth == min(n + 1, MAX_QUEUE)
            assert slowest < 0.1, f"a record() call took {slowest:.3f}s"
            assert None not in ids  # each new record is queued; an older one makes room
            stats = om.stats()
            assert stats.recorded == 6 * MAX_QUEUE
            # 300 recorded; 50 in flight and 50 queued are kept; the rest were dropped, oldest first
            assert stats.dropped == {"queue_full": 6 * MAX_QUEUE - MAX_QUEUE - MAX_QUEUE}, stats
            assert stats.accepted == 0

            gateway.release()
            assert om.flush(timeout=3), om.stats()
            assert gateway.batches == [in_flight, ids[-MAX_QUEUE:]]  # the newest 50 were kept
            stats = om.stats()
            assert (stats.accepted, stats.queue_depth, stats.dropped) == (2 * MAX_QUEUE, 0, {"queue_full": 200})
        finally:
            om.shutdown(timeout=1)

    def test_records_put_back_over_the_byte_limit_do_not_overfill_the_queue(
        self, gateway: StalledGateway, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        encoding = threading.Event()
        go_on = threading.Event()

        class HeldJson:
            """The sender's JSON encoding, held at its first record until the caller has refilled the queue."""

            @staticmethod
            def dumps(obj: Any, **kwargs: Any) -> str:
                if not go_on.is_set():
                    encoding.set()
                    go_on.wait(3)
                return json.dumps(obj, **kwargs)

        monkeypatch.setattr(opsmeter.client, "json", HeldJson)
        om = client(gateway.url, max_batch_bytes=1024)  # a few records a batch: the rest of the 50 go back
        try:
            first = [record_one(om, n) for n in range(MAX_QUEUE)]
            assert encoding.wait(3)  # all 50 are out of the queue, being encoded
            newer = [record_one(om, n) for n in range(MAX_QUEUE)]
            go_on.set()
            gateway.wait_for_batches(1)
            sent = len(gateway.batches[0])
            assert 0 < sent < MAX_QUEUE
            assert gateway.batches[0] == first[:sent]
            stats = om.stats()
            assert stats.queue_depth == MAX_QUEUE, stats
            assert stats.dropped == {"queue_full": MAX_QUEUE - sent}, stats  # the put-back ones, the oldest

            gateway.release()
            assert om.flush(timeout=3), om.stats()
            assert [i for batch in gateway.batches[1:] for i in batch] == newer
        finally:
            om.shutdown(timeout=1)
