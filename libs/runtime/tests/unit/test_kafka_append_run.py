"""``append_run`` fills an aiokafka batch exactly as ``BatchBuilder.append`` does, record by record."""

from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from opsmeter_runtime.kafka import append_run


def _records(n: int, size: int) -> list[tuple[str, bytes | None, bytes]]:
    return [("t", b"ws_1", (b"%06d" % i) * (size // 6)) for i in range(n)]


def _decoded(builder: BatchBuilder) -> list[tuple[int, bytes | None, bytes | None]]:
    batch = DefaultRecordBatch(bytearray(builder._build()))
    batch.validate_crc()
    return [(r.offset, r.key, r.value) for r in batch]


def test_the_same_records_as_the_public_append_and_a_full_batch_stops_both_at_the_same_record() -> None:
    records = _records(200, 600)
    public = BatchBuilder(16 * 1024, 0)
    fitted_public = 0
    for _, key, value in records:
        if public.append(timestamp=None, key=key, value=value) is None:
            break
        fitted_public += 1
    fast = BatchBuilder(16 * 1024, 0)
    fitted = append_run(fast, b"ws_1", records, 0, len(records))
    assert 0 < fitted == fitted_public < len(records)
    assert _decoded(fast) == _decoded(public)
    assert fast.append(timestamp=None, key=b"ws_1", value=b"x") is None  # closed when full, as the public one


def test_runs_continue_a_batch_with_the_next_offsets() -> None:
    records = _records(10, 60)
    fast = BatchBuilder(1 << 20, 0)
    assert append_run(fast, b"ws_1", records, 0, 4) == 4
    assert append_run(fast, b"ws_1", records, 4, 10) == 10
    assert [offset for offset, _, _ in _decoded(fast)] == list(range(10))
    assert [value for _, _, value in _decoded(fast)] == [value for _, _, value in records]


def test_a_closed_batch_takes_nothing() -> None:
    fast = BatchBuilder(1 << 20, 0)
    fast.close()
    assert append_run(fast, b"ws_1", _records(3, 60), 0, 3) == 0
