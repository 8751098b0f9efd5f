"""One ClickHouse adapter: a server through clickhouse-connect, or the embedded chDB engine.

The SQL is the same on both; only the DSN differs. chDB has no async client and one process owns a
path, so every call runs on one worker thread.
"""

import asyncio
import re
from collections.abc import Mapping, Sequence
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
    """Async facade over a synchronous clickhouse-connect client."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.embedded = dsn.startswith("chdb://")
        self._executor = ThreadPoolExecutor(max_workers=1 if self.embedded else 4, thread_name_prefix="clickhouse")
        self._client: Any = None

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> "ClickHouse":
        return cls(clickhouse_dsn(settings))

    async def connect(self) -> None:
        self._client = await self._run(lambda: clickhouse_connect.get_client(dsn=self.dsn))

    async def close(self) -> None:
        if self._client is not None:
            client = self._client
            self._client = None
            await self._run(client.close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("ClickHouse is not connected")
        return self._client

    async def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        client = self.client
        return await self._run(lambda: client.command(sql, parameters=dict(parameters or {})))

    async def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows as dicts; bind values with ``{name:Type}`` placeholders, never by formatting."""
        client = self.client

        def run() -> list[dict[str, Any]]:
            result = client.query(sql, parameters=dict(parameters or {}), settings=dict(settings or {}))
            return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

        rows: list[dict[str, Any]] = await self._run(run)
        return rows

    async def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        column_names: Sequence[str],
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        client = self.client
        await self._run(
            lambda: client.insert(table, list(rows), column_names=list(column_names), settings=dict(settings or {}))
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
