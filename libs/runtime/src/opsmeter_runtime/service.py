"""Running a service process: uvicorn with graceful shutdown on SIGTERM and Ctrl-C, one or several workers."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from opsmeter_runtime.logs import configure_logging
from opsmeter_runtime.read_deadline import ReadDeadlineMiddleware, ReadDeadlineProtocol
from opsmeter_runtime.settings import ServiceSettings


def serve(app: ASGIApp, settings: ServiceSettings, *, service: str, workers: int = 1, factory: str = "") -> None:
    """Serve ``app`` until SIGTERM/SIGINT; the lifespan then stops consumers after their last commit.

    With ``workers`` > 1, uvicorn runs that many processes sharing the port, each building its app with
    ``factory`` (``"module:function"``, which configures its own process's logging); their Prometheus metrics
    go to one shared directory (see :func:`metrics_directory`), so any worker's ``/metrics`` answers for all.
    """
    configure_logging(service, settings.runtime.log_level)
    with_read_deadline(app)
    options = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 20,
        "loop": "uvloop",
        "http": ReadDeadlineProtocol,
    }
    if workers > 1:
        if not factory:
            raise ValueError("several workers need the app's factory as an import string")
        with metrics_directory():
            uvicorn.run(factory, factory=True, workers=workers, **options)  # type: ignore[arg-type]
        return
    config = uvicorn.Config(app, **options)  # type: ignore[arg-type]
    # Bound before the app starts: a taken port ends the process at once (uvicorn exits 1), instead of after the
    # lifespan started consumers that would then keep a process without an HTTP port alive.
    socket = config.bind_socket()
    uvicorn.Server(config).run(sockets=[socket])


def with_read_deadline(app: ASGIApp) -> None:
    """The app tells :class:`ReadDeadlineProtocol` when each request has been read (its middleware, outermost);
    without it the protocol's deadline would close every connection that long after its first byte, answers in
    flight included. Added here, where the protocol is chosen, to an app that lacks it."""
    if not isinstance(app, Starlette):
        return
    present: set[object] = {m.cls for m in app.user_middleware}
    if ReadDeadlineMiddleware not in present:
        app.add_middleware(ReadDeadlineMiddleware)


MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def metrics_directory() -> Iterator[None]:
    """prometheus-client's multiprocess mode for the workers about to be spawned: each writes its metrics to
    files in one directory, which ``/metrics`` merges. ``PROMETHEUS_MULTIPROC_DIR`` when set (emptied first: a
    previous run's counters must not add up with these), else a directory of its own, removed afterwards."""
    given = os.environ.get(MULTIPROCESS_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="opsmeter-metrics-") as created:
        os.environ[MULTIPROCESS_ENV] = created
        try:
            yield
        finally:
            os.environ.pop(MULTIPROCESS_ENV, None)
