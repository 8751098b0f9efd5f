import asyncio
from pathlib import Path

import pytest

from opsmeter_ingest.adapters.spool import Spool, SpooledRecord, SpoolUnavailable


def records(n: int, start: int = 0) -> list[SpooledRecord]:
    return [SpooledRecord("telemetry.llm-requests", b"ws_a", f"event-{i}".encode()) for i in range(start, start + n)]


class TestSpool:
    async def test_records_come_back_in_order_across_a_restart(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        await spool.append(records(3))
        await spool.append(records(2, start=3))
        reopened = Spool(tmp_path, max_bytes=1 << 20)
        assert reopened.pending == 5
        assert [r.value for _, r in await reopened.peek(10)] == [f"event-{i}".encode() for i in range(5)]

    async def test_commit_moves_past_published_records_and_survives_a_restart(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        await spool.append(records(4))
        first_two = await spool.peek(2)
        await spool.commit(first_two)
        reopened = Spool(tmp_path, max_bytes=1 << 20)
        assert reopened.pending == 2
        assert [r.value for _, r in await reopened.peek(10)] == [b"event-2", b"event-3"]

    async def test_an_empty_spool_leaves_no_files(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        await spool.append(records(2))
        batch = await spool.peek(10)
        await spool.commit(batch)
        assert spool.pending == 0
        assert list(tmp_path.iterdir()) == []

    async def test_a_full_spool_refuses_rather_than_dropping(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=100)
        await spool.append(records(1))
        with pytest.raises(SpoolUnavailable, match="full"):
            await spool.append(records(5))
        assert spool.pending == 1

    async def test_once_full_it_refuses_until_a_quarter_is_free_again(self, tmp_path: Path) -> None:
        one = len(records(1)[0].topic) + 4 + 7 + 12  # one record as stored: header, topic, key, value
        spool = Spool(tmp_path, max_bytes=10 * one)
        await spool.append(records(9))
        assert spool.has_room(one)  # room for one more: nothing refused yet
        with pytest.raises(SpoolUnavailable):
            await spool.append(records(2))
        assert not spool.has_room(one)  # the one it still has room for is not offered any more
        await spool.commit((await spool.peek(9))[:1])  # one drained: the file is not smaller yet
        assert not spool.has_room(one)
        await spool.commit(await spool.peek(9))  # all drained: the file goes, the spool is empty
        assert spool.has_room(10 * one)
        await spool.append(records(1))
        assert spool.pending == 1

    async def test_concurrent_appends_share_writes_and_keep_every_record(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        await asyncio.gather(*(spool.append(records(1, start=i)) for i in range(50)))
        assert spool.pending == 50
        assert sorted(r.value for _, r in await Spool(tmp_path, max_bytes=1 << 20).peek(100)) == sorted(
            f"event-{i}".encode() for i in range(50)
        )

    async def test_only_workspaces_with_spooled_events_are_held_back(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        await spool.append(records(2))
        assert spool.holds(b"ws_a")
        assert not spool.holds(b"ws_b")
        await spool.commit(await spool.peek(10))
        assert not spool.holds(b"ws_a")

    async def test_a_torn_last_record_is_ignored(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        await spool.append(records(2))
        with (tmp_path / "spool.log").open("ab") as f:
            f.write(b"\x00\x00\x00\x16\x00")
        reopened = Spool(tmp_path, max_bytes=1 << 20)
        await reopened.append(records(1, start=2))
        assert [r.value for _, r in await reopened.peek(10)] == [b"event-0", b"event-1", b"event-2"]

    async def test_space_is_given_back_while_records_still_wait(self, tmp_path: Path) -> None:
        # Sustained load: the drainer never finds the spool empty, yet the spool never fills up.
        spool = Spool(tmp_path, max_bytes=4_000, compact_min_bytes=1_000)
        published: list[bytes] = []
        await spool.append(records(5))
        for round_ in range(1, 300):
            await spool.append(records(5, start=5 * round_))
            batch = await spool.peek(5)
            await spool.commit(batch)
            published += [r.value for _, r in batch]
            assert spool.pending == 5  # always five waiting
        assert published == [f"event-{i}".encode() for i in range(1495)]
        assert sum(f.stat().st_size for f in tmp_path.glob("spool*.log")) <= 4_000
        assert len(list(tmp_path.glob("spool*.log"))) == 1
        reopened = Spool(tmp_path, max_bytes=4_000, compact_min_bytes=1_000)
        assert [r.value for _, r in await reopened.peek(10)] == [f"event-{i}".encode() for i in range(1495, 1500)]

    async def test_a_generation_a_crash_left_unswitched_is_ignored(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        await spool.append(records(3))
        await spool.commit(await spool.peek(1))
        (tmp_path / "spool.1.log").write_bytes(b"half-written copy")  # the crash: before spool.offset moved
        reopened = Spool(tmp_path, max_bytes=1 << 20)
        assert [r.value for _, r in await reopened.peek(10)] == [b"event-1", b"event-2"]
        assert not (tmp_path / "spool.1.log").exists()

    async def test_an_offset_written_by_the_previous_version_is_read(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path, max_bytes=1 << 20)
        await spool.append(records(3))
        first = await spool.peek(1)
        (tmp_path / "spool.offset").write_text(str(first[0][0]))  # the old format: an offset alone
        assert [r.value for _, r in await Spool(tmp_path, max_bytes=1 << 20).peek(10)] == [b"event-1", b"event-2"]
