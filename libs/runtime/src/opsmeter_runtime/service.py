"""Running a service process: uvicorn with graceful shutdown on SIGTERM and Ctrl-C."""

import uvicorn
from starlette.types import ASGIApp

from opsmeter_runtime.logs import configure_logging
from opsmeter_runtime.read_deadline import read_deadline_protocol
from opsmeter_runtime.settings import ServiceSettings


def serve(app: ASGIApp, settings: ServiceSettings, *, service: str) -> None:
    """Serve ``app`` until SIGTERM/SIGINT; the lifespan then stops consumers after their last commit."""
    configure_logging(service, settings.runtime.log_level)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=20,
        loop="uvloop",
        http=read_deadline_protocol(settings.runtime.http_read_timeout_s),
    )
    uvicorn.Server(config).run()
