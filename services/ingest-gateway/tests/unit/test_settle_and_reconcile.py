"""Settlement writes stay small whatever waits, and events decided in-process are reconciled once."""

import asyncio
from typing import Any

from opsmeter_ingest.adapters.admission import (
    MAX_SETTLE_EVENTS,
    MAX_UNRECONCILED,
    DegradedAdmission,
    DegradedSettlement,
    FailOpenAdmission,
    RequestSettlement,
    Settlement,
    Settlements,
    Settler,
)
from opsmeter_ingest.ports import Admission, AdmitItem, Unconfirmed
from opsmeter_runtime.projections import PolicyStatus


class RecordingAdmission:
    """Stands in for Redis (pure batching logic under test): records what each write would carry."""

    def __init__(self) -> None:
        self.writes: list[list[RequestSettlement]] = []
        self.reconciled: list[tuple[str, str, list[DegradedSettlement]]] = []

    async def settle_many(self, batches: list[RequestSettlement]) -> None:
        self.writes.append(batches)

    async def reconcile(self, workspace_id: str, period: str, settlements: list[DegradedSettlement]) -> int:
        await asyncio.sleep(0.01)  # concurrent requests of the workspace run meanwhile
        self.reconciled.append((workspace_id, period, settlements))
        return len(settlements)


def _fail_open(admission: RecordingAdmission, degraded: DegradedAdmission) -> FailOpenAdmission:
    """The fail-open admission for its reconcile step alone (nothing else of it runs in these tests)."""
    return FailOpenAdmission(admission, degraded, notices=None)  # type: ignore[arg-type]


def _request(n: int, events: int) -> list[Settlement]:
    return [(f"r{n}-{i}", b"{}", f"e{n}-{i}") for i in range(events)]


async def test_settlements_of_many_full_batches_go_out_in_bounded_writes() -> None:
    admission = RecordingAdmission()
    settler = Settler(admission, linger_s=0)  # type: ignore[arg-type]
    running = asyncio.create_task(settler.run())
    for n in range(300):  # 300 requests of 500 events each, waiting at once
        settler.submit("ws_a", "2026-12", f"t{n}", _request(n, 500))
    await settler.flush()
    running.cancel()
    sizes = [sum(len(outcomes) for _, _, _, outcomes in write) for write in admission.writes]
    assert max(sizes) <= MAX_SETTLE_EVENTS
    settled = [s for write in admission.writes for _, _, _, outcomes in write for s in outcomes]
    assert settled == [s for n in range(300) for s in _request(n, 500)]  # every one, once, in order


async def test_requests_settled_with_their_record_count_as_one_event_in_a_write() -> None:
    admission = RecordingAdmission()
    settler = Settler(admission, linger_s=0)  # type: ignore[arg-type]
    running = asyncio.create_task(settler.run())
    for n in range(MAX_SETTLE_EVENTS + 10):  # each request's events all in Kafka: one record each
        settler.submit("ws_a", "2026-12", f"t{n}", "kafka")
    await settler.flush()
    running.cancel()
    assert [len(write) for write in admission.writes] == [MAX_SETTLE_EVENTS, 10]
    assert [token for write in admission.writes for _, _, token, _ in write] == [
        f"t{n}" for n in range(MAX_SETTLE_EVENTS + 10)
    ]


async def test_a_request_larger_than_a_write_is_settled_alone() -> None:
    admission = RecordingAdmission()
    settler = Settler(admission, linger_s=0)  # type: ignore[arg-type]
    running = asyncio.create_task(settler.run())
    settler.submit("ws_a", "2026-12", "t0", _request(0, 10))
    settler.submit("ws_a", "2026-12", "t1", _request(1, MAX_SETTLE_EVENTS + 1))
    settler.submit("ws_a", "2026-12", "t2", _request(2, 10))
    await settler.flush()
    running.cancel()
    assert [[len(o) for _, _, _, o in write] for write in admission.writes] == [[10], [MAX_SETTLE_EVENTS + 1], [10]]


def _degraded(n: int, tag: str = "d") -> list[DegradedSettlement]:
    return [(f"{tag}{i}", b"{}", f"e{tag}{i}", "r") for i in range(n)]


async def test_events_decided_in_process_are_reconciled_once_by_concurrent_requests() -> None:
    admission = RecordingAdmission()
    degraded = DegradedAdmission(120)
    degraded.settled("ws_a", "2026-12", _degraded(7))
    degraded.settled("ws_b", "2026-12", _degraded(3))
    fail_open = _fail_open(admission, degraded)
    await asyncio.gather(*(fail_open._reconcile("ws_a") for _ in range(5)))
    assert admission.reconciled == [("ws_a", "2026-12", _degraded(7))]
    assert degraded.unreconciled == {("ws_b", "2026-12"): _degraded(3)}


async def test_a_reconcile_that_fails_keeps_its_events_before_those_since() -> None:
    class Failing(RecordingAdmission):
        async def reconcile(self, workspace_id: str, period: str, settlements: list[DegradedSettlement]) -> Any:
            degraded.settled("ws_a", "2026-12", _degraded(2, "later"))  # decided in-process meanwhile
            raise ConnectionError("Redis away again")

    degraded = DegradedAdmission(120)
    degraded.settled("ws_a", "2026-12", _degraded(7))
    failing = Failing()
    fail_open = _fail_open(failing, degraded)
    await fail_open._reconcile("ws_a")
    assert degraded.unreconciled == {("ws_a", "2026-12"): _degraded(7) + _degraded(2, "later")}


def test_beyond_the_kept_events_durable_real_ones_are_still_counted() -> None:
    degraded = DegradedAdmission(120)
    degraded.settled("ws_a", "2026-12", _degraded(MAX_UNRECONCILED - 1))
    over: list[DegradedSettlement] = [
        ("x1", b"{}", "ex1", "r"),
        ("x2", "-", "ex2", "r"),
        ("x3", b"{}", "ex3", "o"),
        ("x4", b"{}", "ex4", "r"),
    ]
    degraded.settled("ws_a", "2026-12", over)
    assert degraded.unreconciled[("ws_a", "2026-12")][-1] == over[0]  # the room left: kept one by one
    assert degraded.overflow == {("ws_a", "2026-12"): 1}  # then only x4: durable and real


def _admission() -> Admission:
    return Admission(120, 1, 60, None, 1, "2026-12", PolicyStatus(), "free", [], token="tok")


def _item(n: int) -> AdmitItem:
    return AdmitItem(f"r{n}", "r", 220, f"e{n}", b'{"eventId":"e%d"}' % n)


async def test_an_unconfirmed_event_is_settled_once_the_producer_knows_and_never_by_its_requests_record() -> None:
    admission = RecordingAdmission()
    settler = Settler(admission, linger_s=0)  # type: ignore[arg-type]
    running = asyncio.create_task(settler.run())
    settlements = Settlements(settler, DegradedAdmission(default_rate_limit=120))
    landed: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    gave_up: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    settlements.settle(
        "ws_a", _admission(), [(_item(1), "kafka"), (_item(2), "kafka"), (_item(3), Unconfirmed(landed))]
    )
    await settler.flush()
    # The two in Kafka event by event: a record saying "all in Kafka" would answer for the unconfirmed one too.
    assert admission.writes == [
        [
            (
                "ws_a",
                "2026-12",
                "tok",
                [("r1", b'{"eventId":"e1","spooled":false}', "e1"), ("r2", b'{"eventId":"e2","spooled":false}', "e2")],
            )
        ]
    ]
    settlements.settle("ws_a", _admission(), [(_item(4), Unconfirmed(gave_up))])
    await asyncio.sleep(0.01)
    await settler.flush()
    assert len(admission.writes) == 1  # nothing settled while the producer does not know
    landed.set_result(True)
    gave_up.set_result(False)
    await asyncio.sleep(0.01)
    await settler.flush()
    running.cancel()
    later = sorted(s for write in admission.writes[1:] for _, _, _, outcomes in write for s in outcomes)
    # The one that landed answers repeats like an accepted event; the other is released (a retry counts as new).
    assert later == [("r3", b'{"eventId":"e3","spooled":false}', "e3"), ("r4", "-", "e4")]
