"""Entrypoint: ``create_app()`` for ASGI servers, ``run()`` for the ``opsmeter-policy-engine`` command."""

from fastapi import FastAPI

from opsmeter_policy.api.routes import router
from opsmeter_policy.bootstrap import SERVICE, bootstrap
from opsmeter_policy.config import PolicySettings
from opsmeter_runtime.app import create_service_app
from opsmeter_runtime.service import serve


def create_app(settings: PolicySettings | None = None) -> FastAPI:
    settings = settings or PolicySettings()
    return create_service_app(title="Opsmeter policy engine", bootstrap=lambda: bootstrap(settings), routers=[router])


def run() -> None:
    settings = PolicySettings()
    serve(create_app(settings), settings, service=SERVICE)
