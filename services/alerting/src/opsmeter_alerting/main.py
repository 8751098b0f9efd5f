"""Entrypoint: ``create_app()`` for ASGI servers, ``run()`` for the ``opsmeter-alerting`` command."""

from fastapi import FastAPI

from opsmeter_alerting.api.routes import router
from opsmeter_alerting.bootstrap import SERVICE, bootstrap
from opsmeter_alerting.config import AlertingSettings
from opsmeter_runtime.app import create_service_app
from opsmeter_runtime.service import serve


def create_app(settings: AlertingSettings | None = None) -> FastAPI:
    settings = settings or AlertingSettings()
    return create_service_app(title="Opsmeter alerting", bootstrap=lambda: bootstrap(settings), routers=[router])


def run() -> None:
    settings = AlertingSettings()
    serve(create_app(settings), settings, service=SERVICE)
