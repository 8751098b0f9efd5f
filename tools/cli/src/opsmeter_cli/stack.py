"""The local stack: broker, Redis and the five services as child processes, started and stopped in order.

Start: broker → Redis → topics → consumers (reporting, policy-engine, alerting, billing) → gateway.
Stop: gateway first (no new ingest) → each consumer drains its topics and commits → Redis → broker.
While it runs, :meth:`Stack.supervise` restarts a service or Redis that died (with backoff); only the
broker's own death ends the stack, since its topics live in its memory and cannot come back.
"""

import asyncio
import hashlib
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opsmeter_contracts.topics import ALL_TOPICS, COMPACTED_TOPICS
from opsmeter_runtime.kafka import ensure_topics
from opsmeter_runtime.localstack import (
    LocalStackError,
    ManagedProcess,
    RestartBackoff,
    broker_process,
    free_port,
    port_open,
    redis_process,
    wait_for,
)
from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    env_prefix: str
    default_port: int


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("reporting", "opsmeter_reporting.main", "OPSMETER_REPORTING_", 8084),
    ServiceSpec("policy-engine", "opsmeter_policy.main", "OPSMETER_POLICY_ENGINE_", 8081),
    ServiceSpec("alerting", "opsmeter_alerting.main", "OPSMETER_ALERTING_", 8082),
    ServiceSpec("billing", "opsmeter_billing.main", "OPSMETER_BILLING_", 8083),
    ServiceSpec("ingest-gateway", "opsmeter_ingest.main", "OPSMETER_INGEST_GATEWAY_", 8080),
    ServiceSpec("console", "opsmeter_console.main", "OPSMETER_CONSOLE_", 8090),
)


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path
    broker_port: int
    redis_port: int
    service_ports: dict[str, int]
    extra_env: dict[str, str] = field(default_factory=dict)
    external_kafka: str | None = None
    external_redis: str | None = None
    clickhouse_url: str | None = None

    @classmethod
    def from_env(cls) -> "StackConfig":
        return cls(
            data_dir=Path(os.environ.get("OPSMETER_DATA_DIR", ".data")).resolve(),
            broker_port=_env_port("OPSMETER_BROKER_PORT", 19092),
            redis_port=_env_port("OPSMETER_REDIS_PORT", 16379),
            service_ports={s.name: _env_port(f"{s.env_prefix}PORT", s.default_port) for s in SERVICES},
        )

    @classmethod
    def on_free_ports(cls, data_dir: Path, extra_env: dict[str, str] | None = None) -> "StackConfig":
        """A stack of its own under ``data_dir``: every port a free one, test settings, warnings-only logs."""
        return cls(
            data_dir=data_dir,
            broker_port=free_port(),
            redis_port=free_port(),
            service_ports={s.name: free_port() for s in SERVICES},
            extra_env={"OPSMETER_ENV": "test", "OPSMETER_LOG_LEVEL": "WARNING", **(extra_env or {})},
        )

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or f"127.0.0.1:{self.broker_port}"

    @property
    def redis_url(self) -> str:
        return self.external_redis or f"redis://127.0.0.1:{self.redis_port}/0"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[service]}"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "stack.json"

    @property
    def operator_token_file(self) -> Path:
        return self.data_dir / "operator-token"


def _local_secret(path: Path) -> str:
    """A random secret kept under the data dir (created once, mode 0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def operator_token(config: StackConfig) -> str:
    """The local operator token: it may create workspaces and set plans."""
    return _local_secret(config.operator_token_file)


def service_token(config: StackConfig) -> str:
    """The local service-to-service token: it may read any workspace's reports."""
    return _local_secret(config.data_dir / "service-token")


def http_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:  # noqa: S310 - loopback only
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class BrokerExited(LocalStackError):
    """The local broker died: its topics were in memory, so the stack cannot carry on."""


@dataclass
class Stack:
    config: StackConfig
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    backoff: dict[str, RestartBackoff] = field(default_factory=dict)
    restart_due: dict[str, float] = field(default_factory=dict)

    def _log(self, name: str) -> Path:
        return self.config.data_dir / "logs" / f"{name}.log"

    def service_env(self) -> dict[str, str]:
        c = self.config
        return {
            "OPSMETER_ENV": os.environ.get("OPSMETER_ENV", "dev"),
            "OPSMETER_DATA_DIR": str(c.data_dir),
            "OPSMETER_KAFKA_BOOTSTRAP": c.kafka_bootstrap,
            "OPSMETER_REDIS_URL": c.redis_url,
            "OPSMETER_KAFKA_SESSION_TIMEOUT_MS": os.environ.get("OPSMETER_KAFKA_SESSION_TIMEOUT_MS", "3000"),
            "OPSMETER_KAFKA_HEARTBEAT_INTERVAL_MS": os.environ.get("OPSMETER_KAFKA_HEARTBEAT_INTERVAL_MS", "1000"),
            "OPSMETER_OPERATOR_TOKEN_SHA256": hashlib.sha256(operator_token(c).encode()).hexdigest(),
            "OPSMETER_SERVICE_TOKEN": service_token(c),
            "OPSMETER_SERVICE_TOKEN_SHA256": hashlib.sha256(service_token(c).encode()).hexdigest(),
            "OPSMETER_ALERTING_ALLOW_PRIVATE_DESTINATIONS": "true",  # local receivers listen on 127.0.0.1 (ADR 70)
            **{f"{s.env_prefix}PORT": str(c.service_ports[s.name]) for s in SERVICES},
            **({"OPSMETER_CLICKHOUSE_URL": c.clickhouse_url} if c.clickhouse_url else {}),
            **c.extra_env,
        }

    def _check_ports_free(self) -> None:
        c = self.config
        wanted = dict(c.service_ports)
        if c.external_kafka is None:
            wanted["broker"] = c.broker_port
        if c.external_redis is None:
            wanted["redis"] = c.redis_port
        shared = sorted({port for port in wanted.values() if list(wanted.values()).count(port) > 1})
        if shared:
            names = [f"{name} ({port})" for name, port in wanted.items() if port in shared]
            raise LocalStackError(f"two parts of the stack on one port: {', '.join(names)}")
        busy = [f"{name} ({port})" for name, port in wanted.items() if port_open(port)]
        if busy:
            raise LocalStackError(f"ports already in use: {', '.join(busy)} — is a stack already running (make down)?")

    def start(self, *, timeout: float = 120.0, on_step: Callable[[str], None] | None = None) -> None:
        say = on_step or (lambda _msg: None)
        c = self.config
        c.data_dir.mkdir(parents=True, exist_ok=True)
        self._check_ports_free()
        try:
            if c.external_kafka is None:
                broker = broker_process(c.broker_port, self._log("broker")).start()
                self.processes["broker"] = broker
                wait_for(lambda: port_open(c.broker_port), timeout=30, what="the broker port", process=broker)
                say(f"broker (Tansu, in memory) on {c.kafka_bootstrap}")
            if c.external_redis is None:
                redis = redis_process(c.redis_port, c.data_dir / "redis", self._log("redis")).start()
                self.processes["redis"] = redis
                wait_for(lambda: port_open(c.redis_port), timeout=30, what="the Redis port", process=redis)
                say(f"redis (AOF under {c.data_dir / 'redis'}) on {c.redis_url}")
            asyncio.run(ensure_topics(c.kafka_bootstrap, ALL_TOPICS, compacted=COMPACTED_TOPICS))
            env = self.service_env()
            for spec in SERVICES:
                self.processes[spec.name] = ManagedProcess(
                    name=spec.name,
                    argv=[sys.executable, "-c", f"from {spec.module} import run; run()"],
                    log_path=self._log(spec.name),
                    env=env,
                ).start()
            for spec in SERVICES:
                url = c.url(spec.name)
                wait_for(
                    lambda u=url: http_ready(u),  # type: ignore[misc]
                    timeout=timeout,
                    what=f"{spec.name} /readyz",
                    process=self.processes[spec.name],
                )
                say(f"{spec.name} ready on {url}")
        except BaseException:
            self.stop()
            raise

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items() if p.pid is not None}

    def stop(self) -> None:
        """Gateway first, then the consumers (each drains and commits), then Redis, then the broker."""
        services = [s.name for s in SERVICES if s.name != "ingest-gateway"]
        order = ["ingest-gateway", *services, "redis", "broker"]
        for name in order:
            process = self.processes.get(name)
            if process is not None:
                process.stop(timeout=40.0 if name not in ("redis", "broker") else 15.0)
        self.processes.clear()

    def alive(self) -> dict[str, bool]:
        return {name: p.alive() for name, p in self.processes.items()}

    def restarts(self) -> dict[str, int]:
        return {name: self.backoff[name].restarts if name in self.backoff else 0 for name in self.processes}

    def supervise(self) -> bool:
        """Restart every service (and Redis) that died, after its backoff; whether anything changed (an exit
        seen, a restart made), so the caller rewrites the state file.

        Raises :class:`BrokerExited` if the broker died: nothing else stops the stack.
        """
        now = time.monotonic()
        changed = False
        for name, process in self.processes.items():
            if process.alive():
                continue
            if name == "broker":
                raise BrokerExited(
                    f"the broker exited (code {process.exit_code}); its topics were in memory and are gone"
                )
            due = self.restart_due.get(name)
            if due is None:
                ran_for = now - (process.started_at or now)
                backoff = self.backoff.setdefault(name, RestartBackoff())
                delay = backoff.delay_after_exit(ran_for)
                self.restart_due[name] = now + delay
                changed = True
                log.warning(
                    "service_exited",
                    child=name,
                    exit_code=process.exit_code,
                    ran_for_s=round(ran_for, 1),
                    restart=backoff.restarts,
                    restart_in_s=delay,
                    log_file=str(process.log_path),
                )
            elif now >= due:
                del self.restart_due[name]
                process.stop(timeout=0)
                process.start()
                changed = True
                log.warning("service_restarted", child=name, pid=process.pid, restarts=self.backoff[name].restarts)
        return changed


def write_state(config: StackConfig, state: str, pids: dict[str, int], restarts: dict[str, int] | None = None) -> None:
    """The supervisor's state for ``stack up|down|status``, replaced atomically."""
    config.state_file.parent.mkdir(parents=True, exist_ok=True)
    written = config.state_file.with_suffix(".json.tmp")
    written.write_text(
        json.dumps(
            {
                "state": state,
                "supervisor": os.getpid(),
                "pids": pids,
                "restarts": restarts or {},
                "updated": time.time(),
            }
        )
    )
    written.replace(config.state_file)


def read_state(config: StackConfig) -> dict[str, object] | None:
    try:
        loaded: dict[str, object] = json.loads(config.state_file.read_text())
        return loaded
    except (FileNotFoundError, json.JSONDecodeError):
        return None
