"""Entrypoint: ``create_app()`` for ASGI servers, ``run()`` for the ``opsmeter-reporting`` command."""

from fastapi import FastAPI

from opsmeter_reporting.api.explore import router as explore_router
from opsmeter_reporting.api.routes import router
from opsmeter_reporting.bootstrap import SERVICE, bootstrap
from opsmeter_reporting.config import ReportingSettings
from opsmeter_runtime.app import create_service_app
from opsmeter_runtime.service import serve


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    return create_service_app(
        title="Opsmeter reporting", bootstrap=lambda: bootstrap(settings), routers=[router, explore_router]
    )


def run() -> None:
    settings = ReportingSettings()
    serve(create_app(settings), settings, service=SERVICE)
