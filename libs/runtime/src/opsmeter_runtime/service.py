"""Running a service process: uvicorn with graceful shutdown on SIGTERM and Ctrl-C, one or several workers."""

import uvicorn
from starlette.types import ASGIApp

from opsmeter_runtime.logs import configure_logging
from opsmeter_runtime.read_deadline import ReadDeadlineProtocol
from opsmeter_runtime.settings import ServiceSettings


def serve(app: ASGIApp, settings: ServiceSettings, *, service: str, workers: int = 1, factory: str = "") -> None:
    """Serve ``app`` until SIGTERM/SIGINT; the lifespan then stops consumers after their last commit.

    With ``workers`` > 1, uvicorn runs that many processes sharing the port, each building its app with
    ``factory`` (``"module:function"``, which configures its own process's logging).
    """
    configure_logging(service, settings.runtime.log_level)
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
        uvicorn.run(factory, factory=True, workers=workers, **options)  # type: ignore[arg-type]
        return
    uvicorn.Server(uvicorn.Config(app, **options)).run()  # type: ignore[arg-type]
