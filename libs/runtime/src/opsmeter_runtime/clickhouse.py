"""One ClickHouse adapter: a server through clickhouse-connect, or the embedded chDB engine.

The SQL is the same on both; only the DSN differs. The clients are synchronous, so calls run on a pool
of threads, each with its own client: chDB runs queries from separate connections to one path in
parallel (a connection serialises its own calls), as a server does. A :meth:`ClickHouse.lane` is a
second pool with its own threads, so slow queries there never queue ahead of this one's (ADR 0051).
"""

import asyncio
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import clickhouse_connect

from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.settings import RuntimeSettings

log = get_logger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def clickhouse_dsn(settings: RuntimeSettings) -> str:
    if settings.clickhouse_url:
        return settings.clickhouse_url
    path = settings.resolved_data_dir / "clickhouse"
    path.mkdir(parents=True, exist_ok=True)
    return f"chdb://{path}"


class ClickHouse:
    """Async facade over synchronous clickhouse-connect clients, one per worker thread."""

    def __init__(self, dsn: str, *, workers: int = 4, name: str = "clickhouse") -> None:
        self.dsn = dsn
        self.embedded = dsn.startswith("chdb://")
        self.name = name
        self.workers = workers
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._connected = False

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> "ClickHouse":
        return cls(clickhouse_dsn(settings))

    def lane(self, name: str, workers: int, dsn: str | None = None) -> "ClickHouse":
        """Another pool of threads and clients on the same database (as another user with ``dsn``), for
        work that must not queue behind this pool's."""
        return ClickHouse(dsn or self.dsn, workers=workers, name=name)

    async def connect(self) -> None:
        self._connected = True
        await self._run(self._thread_client)

    async def close(self) -> None:
        self._connected = False
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            await asyncio.to_thread(client.close)

    def _thread_client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if not self._connected:
                raise RuntimeError("ClickHouse is not connected")
            client = clickhouse_connect.get_client(dsn=self.dsn)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _call(self, fn: Callable[[Any], Any]) -> Any:
        return await self._run(lambda: fn(self._thread_client()))

    async def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        return await self._call(lambda client: client.command(sql, parameters=dict(parameters or {})))

    async def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows as dicts; bind values with ``{name:Type}`` placeholders, never by formatting."""

        def run(client: Any) -> list[dict[str, Any]]:
            result = client.query(sql, parameters=dict(parameters or {}), settings=dict(settings or {}))
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

        rows: list[dict[str, Any]] = await self._call(run)
        return rows

    async def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        await self._call(
            lambda client: client.insert(
                table, list(rows), column_names=list(column_names), settings=dict(settings or {})
            )
        )

    async def kill(self, log_comment: str) -> None:
        """Cancel the running queries that carry this ``log_comment`` setting."""
        await self.command(
            "KILL QUERY WHERE Settings['log_comment'] = {log_comment:String} ASYNC", {"log_comment": log_comment}
        )

    async def ping(self) -> bool:
        try:
            await self.command("SELECT 1")
        except Exception:
            return False
        return True

    async def migrate(self, migrations: Traversable | Path) -> list[str]:
        """Apply the numbered ``NNNN_name.sql`` files not applied yet, in order; return their names."""
        await self.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime64(3, 'UTC') "
            "DEFAULT now64(3)) ENGINE = MergeTree ORDER BY name"
        )
        applied = {row["name"] for row in await self.query("SELECT name FROM schema_migrations")}
        files = await asyncio.to_thread(_migration_files, migrations)
        done: list[str] = []
        for name, sql in files:
            if name in applied:
                continue
            for statement in _statements(sql):
                await self.command(statement)
            await self.insert("schema_migrations", [[name]], ["name"])
            log.info("clickhouse_migration_applied", migration=name)
            done.append(name)
        return done


def _migration_files(migrations: Traversable | Path) -> list[tuple[str, str]]:
    found = [f for f in migrations.iterdir() if _MIGRATION_NAME.match(f.name)]
    return [(f.name, f.read_text()) for f in sorted(found, key=lambda f: f.name)]


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
