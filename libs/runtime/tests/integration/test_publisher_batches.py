"""Publishing many records (concurrent callers, batches larger than one record batch) against the real local broker."""

import asyncio

from aiokafka import AIOKafkaConsumer

from opsmeter_runtime.kafka import EventPublisher, ensure_topics
from opsmeter_runtime.settings import RuntimeSettings


async def read(settings: RuntimeSettings, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[tuple[int, bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < expected:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found.extend((r.partition, r.key or b"", r.value or b"") for r in records)
        await asyncio.sleep(0.3)
        for records in (await consumer.getmany(timeout_ms=200)).values():
            found.extend((r.partition, r.key or b"", r.value or b"") for r in records)
    finally:
        await consumer.stop()
    return found


async def test_concurrent_callers_are_acknowledged_and_each_key_stays_in_order(
    publisher: EventPublisher, runtime_settings: RuntimeSettings, unique: str
) -> None:
    topic = f"test.coalesced-{unique}"
    await ensure_topics(runtime_settings.kafka_bootstrap, [topic], partitions=3)
    keys = [f"ws_{unique}_{k}".encode() for k in range(5)]

    async def caller(c: int) -> list[bool]:
        # even callers interleave the keys (record by record); odd ones send runs of one key (record batches)
        records = [(topic, keys[(c + (i if c % 2 == 0 else i // 10)) % 5], f"{c}:{i}".encode()) for i in range(20)]
        return await publisher.publish_many(records, timeout_s=5.0)

    acks = await asyncio.gather(*(caller(c) for c in range(40)))
    assert all(all(a) and len(a) == 20 for a in acks)
    for key in keys:  # a plain keyed send of each key, after the batches
        await publisher.publish_raw(topic, key, b"plain")
    found = await read(runtime_settings, topic, 805)
    assert len(found) == 805  # every record once
    for key in keys:
        # one partition per key, the one a plain keyed send picks: both paths keep a key's order
        assert len({p for p, k, _ in found if k == key}) == 1
        per_caller: dict[str, list[int]] = {}
        for _, k, v in found:
            if k == key and v != b"plain":
                c, i = v.decode().split(":")
                per_caller.setdefault(c, []).append(int(i))
        assert all(seq == sorted(seq) for seq in per_caller.values())


async def test_a_large_batch_spans_several_record_batches(
    publisher: EventPublisher, runtime_settings: RuntimeSettings, unique: str
) -> None:
    topic = f"test.big-{unique}"
    await ensure_topics(runtime_settings.kafka_bootstrap, [topic], partitions=1)
    value = b"x" * 20_000
    acked = await publisher.publish_many([(topic, b"k", value + str(i).encode()) for i in range(60)], timeout_s=10)
    assert acked == [True] * 60  # 1.2 MB: more than one 512 KiB record batch
    found = await read(runtime_settings, topic, 60)
    assert [v[20_000:] for _, _, v in found] == [str(i).encode() for i in range(60)]


async def test_an_unstarted_publisher_acknowledges_nothing(runtime_settings: RuntimeSettings) -> None:
    idle = EventPublisher(runtime_settings, client_id="idle")
    assert await idle.publish_many([("t", b"k", b"v")], timeout_s=0.1) == [False]
