"""Entrypoint: ``create_app()`` for ASGI servers, ``run()`` for the ``opsmeter-ingest`` command."""

from fastapi import FastAPI, Request, Response

from opsmeter_ingest.api.hygiene import router as hygiene_router
from opsmeter_ingest.api.keys import router as keys_router
from opsmeter_ingest.api.keys import tokens_router
from opsmeter_ingest.api.otlp import router as otlp_router
from opsmeter_ingest.api.otlp import settings_router as otel_attributes_router
from opsmeter_ingest.api.prices import router as prices_router
from opsmeter_ingest.api.routes import router
from opsmeter_ingest.bootstrap import SERVICE, bootstrap
from opsmeter_ingest.config import GatewaySettings
from opsmeter_ingest.errors import IngestRejected
from opsmeter_runtime.app import create_service_app
from opsmeter_runtime.http import json_response
from opsmeter_runtime.logs import configure_logging
from opsmeter_runtime.service import serve


async def render_rejection(_: Request, exc: IngestRejected) -> Response:
    return json_response(exc.body(), exc.status_code, exc.headers)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    return create_service_app(
        title="Opsmeter ingest gateway",
        bootstrap=lambda: bootstrap(settings),
        routers=[
            router,
            keys_router,
            tokens_router,
            hygiene_router,
            otlp_router,
            otel_attributes_router,
            prices_router,
        ],
        exception_handlers={IngestRejected: render_rejection},
    )


def worker_app() -> FastAPI:
    """The app of one of several worker processes (``OPSMETER_INGEST_GATEWAY_WORKERS`` > 1)."""
    settings = GatewaySettings()
    configure_logging(SERVICE, settings.runtime.log_level)
    return create_app(settings)


def run() -> None:
    settings = GatewaySettings()
    serve(create_app(settings), settings, service=SERVICE, workers=settings.workers, factory=f"{__name__}:worker_app")
