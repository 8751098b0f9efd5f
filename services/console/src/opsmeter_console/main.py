"""Entrypoint: ``create_app()`` for ASGI servers, ``run()`` for the ``opsmeter-console`` command."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from opsmeter_console.api.routes import router
from opsmeter_console.bootstrap import SERVICE, ConsoleDeps, bootstrap
from opsmeter_console.config import ConsoleSettings
from opsmeter_runtime.http import ReadinessCheck, RequestContextMiddleware, health_router, install_error_handlers
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.service import serve

log = get_logger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; frame-ancestors 'none'"
    ),
}


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not (settings.web_dir / "index.html").is_file():
            log.warning("console_web_not_built", web_dir=str(settings.web_dir), fix="make install")
        async with bootstrap(settings) as deps:
            app.state.deps = deps
            yield

    app = FastAPI(title="Opsmeter console", version="0.1.0", lifespan=lifespan)
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)

    def checks() -> dict[str, ReadinessCheck]:
        deps: ConsoleDeps = app.state.deps
        return {"redis": deps.redis_ready, "web": deps.web_built}

    app.include_router(health_router(checks))
    app.include_router(router)

    assets = settings.web_dir / "assets"
    if assets.is_dir():
        app.mount("/assets", StaticFiles(directory=assets), name="assets")

    headers = dict(SECURITY_HEADERS)
    if settings.runtime.env == "prod":
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"  # prod is https only

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        answer = await call_next(request)
        for name, value in headers.items():
            answer.headers.setdefault(name, value)
        return answer

    @app.get("/{page:path}", include_in_schema=False)
    async def web_app(page: str) -> Response:
        """Every other path is a page of the single-page app (its router reads the URL)."""
        if page.startswith("api/"):
            return Response(status_code=404)
        index = settings.web_dir / "index.html"
        if not index.is_file():
            return Response("the console's web app is not built: run `make install`", status_code=503)
        public = page.startswith(("compare", "guides/"))
        robots = "index, follow" if public else "noindex, nofollow"
        return FileResponse(index, headers={"Cache-Control": "no-cache", "X-Robots-Tag": robots})

    return app


def run() -> None:
    settings = ConsoleSettings()
    serve(create_app(settings), settings, service=SERVICE)
