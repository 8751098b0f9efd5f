"""A local, fsynced, append-only spool for events Kafka could not take in time.

Records are length-prefixed ``(topic, key, value)``; ``spool.offset`` holds how far the drainer has
published. Appends that arrive together share one write and one fsync (group commit). While a
workspace (the record key) has spooled records, its new events are spooled too, so each workspace's
events reach Kafka in the order they were accepted; other workspaces are not held back.

The published prefix is given back while records still wait (under sustained load the spool may never
be empty at a commit): once it is at least half the file, the unpublished tail is copied into the next
generation's file (``spool.<n>.log``), fsynced, and only then does ``spool.offset`` (``"<n> 0"``, replaced
atomically) point at it. A crash in between leaves the previous generation in force; the stray file is
removed at the next start.
"""

import asyncio
import contextlib
import fcntl
import itertools
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)

_HEADER = struct.Struct(">III")


class SpoolUnavailable(Exception):
    """The spool is full or cannot be written: the caller must answer 503, never 2xx."""


@dataclass(frozen=True)
class SpooledRecord:
    topic: str
    key: bytes
    value: bytes


COMPACT_MIN_BYTES = 4 << 20
"""A published prefix smaller than this is not worth copying the tail for."""


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int, compact_min_bytes: int = COMPACT_MIN_BYTES) -> None:
        self._dir = directory
        self._offset_path = directory / "spool.offset"
        self._max_bytes = max_bytes
        self._compact_min_bytes = compact_min_bytes
        self._lock = asyncio.Lock()
        self._waiting: list[tuple[bytes, int, list[bytes], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._refusing = False
        self._dir.mkdir(parents=True, exist_ok=True)
        self._generation, self._offset = _read_offset(self._offset_path)
        self._log_path = _log_path(directory, self._generation)
        for stray in directory.glob("spool*.log"):  # a generation a crash left before it was switched to
            if stray != self._log_path:
                log.warning("spool_stray_generation_removed", file=stray.name)
                stray.unlink()
        self._size = self._log_path.stat().st_size if self._log_path.exists() else 0
        pending = self._iter_from(self._offset)
        self._by_key: Counter[bytes] = Counter(record.key for _, record in pending)
        good_end = pending[-1][0] if pending else self._offset
        if self._size > good_end:
            log.warning("spool_torn_tail_truncated", bytes=self._size - good_end)
            with self._log_path.open("r+b") as f:
                f.truncate(good_end)
            self._size = good_end

    @property
    def pending(self) -> int:
        """Events spooled and not yet published."""
        return sum(self._by_key.values())

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit now; once an append was refused for want of room, not before a
        quarter of the spool is free again.

        Until then the drainer has the event loop to itself, rather than sharing it with requests that
        would be validated, admitted and priced only to be refused (ADR 46).
        """
        if self._refusing:
            if self._size > self._max_bytes - self._max_bytes // 4:
                return False
            self._refusing = False
        return self._size + size <= self._max_bytes

    def holds(self, key: bytes) -> bool:
        """Whether events of this key (workspace) wait in the spool: then its new events must queue behind."""
        return self._by_key[key] > 0

    async def append(self, records: list[SpooledRecord]) -> None:
        """Write and fsync ``records`` (with whatever else arrives meanwhile); raise SpoolUnavailable."""
        if not records:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        blob = b"".join(_encode(r) for r in records)
        self._waiting.append((blob, len(records), [r.key for r in records], done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            async with self._lock:
                accepted, refused = [], []
                size = self._size
                for item in batch:
                    if size + len(item[0]) > self._max_bytes:
                        refused.append(item)
                    else:
                        accepted.append(item)
                        size += len(item[0])
                try:
                    if accepted:
                        await asyncio.to_thread(self._write, b"".join(item[0] for item in accepted))
                except OSError as exc:
                    for *_, done in batch:
                        done.set_exception(SpoolUnavailable(f"spool write failed: {exc}"))
                    continue
                self._size = size
                for _, _, keys, done in accepted:
                    self._by_key.update(keys)
                    done.set_result(None)
                self._refusing = self._refusing or bool(refused)
                for *_, done in refused:
                    done.set_exception(SpoolUnavailable(f"spool is full ({self._size} of {self._max_bytes} bytes)"))

    def _write(self, blob: bytes) -> None:
        with self._log_path.open("ab") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())

    def _iter_from(self, offset: int, limit: int | None = None) -> list[tuple[int, SpooledRecord]]:
        found: list[tuple[int, SpooledRecord]] = []
        if not self._log_path.exists():
            return found
        with self._log_path.open("rb") as f:
            f.seek(offset)
            position = offset
            while limit is None or len(found) < limit:
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    break
                topic_len, key_len, value_len = _HEADER.unpack(header)
                body = f.read(topic_len + key_len + value_len)
                if len(body) < topic_len + key_len + value_len:
                    break
                position += _HEADER.size + len(body)
                record = SpooledRecord(
                    body[:topic_len].decode(), body[topic_len : topic_len + key_len], body[topic_len + key_len :]
                )
                found.append((position, record))
        return found

    async def peek(self, limit: int) -> list[tuple[int, SpooledRecord]]:
        """Up to ``limit`` unpublished records, each with the offset just past it."""
        async with self._lock:
            return await asyncio.to_thread(self._iter_from, self._offset, limit)

    async def commit(self, published: list[tuple[int, SpooledRecord]]) -> None:
        """Mark these records (a prefix of ``peek``) published; give the published prefix's space back."""
        if not published:
            return
        async with self._lock:
            self._offset = published[-1][0]
            self._by_key.subtract(record.key for _, record in published)
            self._by_key = +self._by_key
            await asyncio.to_thread(self._persist_offset)

    def _persist_offset(self) -> None:
        if not self._by_key and self._offset >= self._size:
            with contextlib.suppress(FileNotFoundError):
                self._log_path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._offset_path.unlink()
            self._generation = self._offset = self._size = 0
            self._log_path = _log_path(self._dir, 0)
            return
        if self._offset >= self._compact_min_bytes and self._offset * 2 >= self._size:
            self._compact()
            return
        self._write_offset(self._generation, self._offset)

    def _compact(self) -> None:
        """The unpublished tail into the next generation's file, then the offset switched to it."""
        with self._log_path.open("rb") as f:
            f.seek(self._offset)
            tail = f.read(self._size - self._offset)
        generation = self._generation + 1
        new_path = _log_path(self._dir, generation)
        with new_path.open("wb") as f:
            f.write(tail)
            f.flush()
            os.fsync(f.fileno())
        self._write_offset(generation, 0)  # the switch: atomic, after the new file is durable
        old_path, reclaimed = self._log_path, self._offset
        self._generation, self._log_path, self._offset, self._size = generation, new_path, 0, len(tail)
        old_path.unlink()
        log.info("spool_compacted", generation=generation, reclaimed_bytes=reclaimed, pending_bytes=len(tail))

    def _write_offset(self, generation: int, offset: int) -> None:
        tmp = self._offset_path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.write(f"{generation} {offset}")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self._offset_path)
        directory = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself durable
        finally:
            os.close(directory)


def _log_path(directory: Path, generation: int) -> Path:
    return directory / ("spool.log" if generation == 0 else f"spool.{generation}.log")


def _read_offset(path: Path) -> tuple[int, int]:
    """``(generation, offset)`` from ``spool.offset``: ``"<generation> <offset>"``, or an offset alone
    (generation 0, as earlier versions wrote it); none yet is the start of generation 0."""
    if not path.exists():
        return 0, 0
    parts = path.read_text().split()
    if len(parts) == 1:
        return 0, int(parts[0])
    if len(parts) == 2:
        return int(parts[0]), int(parts[1])
    return 0, 0


def _encode(record: SpooledRecord) -> bytes:
    topic = record.topic.encode()
    return _HEADER.pack(len(topic), len(record.key), len(record.value)) + topic + record.key + record.value


def claim_spool_directory(root: Path, instance: str) -> tuple[Path, IO[bytes]]:
    """A spool directory under ``root`` that no other live process of this instance uses, and its lock.

    Worker processes sharing a port each take the first free one (``<instance>``, ``<instance>-1``, ...):
    after a restart they take the same ones again, so what a worker left in its spool is drained. The
    lock (``flock``, released when the process ends) stays held while the returned file is open.
    """
    root.mkdir(parents=True, exist_ok=True)
    for index in itertools.count():
        name = instance if index == 0 else f"{instance}-{index}"
        lock = (root / f"{name}.lock").open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return root / name, lock
    raise AssertionError("unreachable")
