"""Entrypoint: ``create_app()`` for ASGI servers, ``run()`` for the ``opsmeter-billing`` command."""

from fastapi import FastAPI

from opsmeter_billing.api.routes import router
from opsmeter_billing.bootstrap import SERVICE, bootstrap
from opsmeter_billing.config import BillingSettings
from opsmeter_runtime.app import create_service_app
from opsmeter_runtime.service import serve


def create_app(settings: BillingSettings | None = None) -> FastAPI:
    settings = settings or BillingSettings()
    return create_service_app(title="Opsmeter billing", bootstrap=lambda: bootstrap(settings), routers=[router])


def run() -> None:
    settings = BillingSettings()
    serve(create_app(settings), settings, service=SERVICE)
