"""The console's own API: the session (cookie) and one proxy to the five services."""

from typing import Annotated

from fastapi import APIRouter, Cookie, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from opsmeter_console.adapters.upstream import forward
from opsmeter_console.api.deps import Deps, Session, signed_in
from opsmeter_console.domain import (
    REQUEST_HEADERS,
    RESPONSE_HEADERS,
    SESSION_COOKIE,
    forwardable,
    parse_session_cookie,
    same_origin,
    session_cookie,
)
from opsmeter_console.errors import NotForwarded, UpstreamUnavailable
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.errors import Forbidden, Unauthorized
from opsmeter_runtime.http import json_response
from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)
router = APIRouter(prefix="/api", tags=["console"])


class SignInBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token: str = Field(min_length=1, max_length=256)


def _who(principal: Principal) -> dict[str, str]:
    return {"workspaceId": principal.workspace_id, "role": principal.role}


def _from_own_pages(request: Request) -> bool:
    headers = request.headers
    return same_origin(headers.get("origin"), headers.get("host"), headers.get("sec-fetch-site"))


def _secure(deps: Deps, request: Request) -> bool:
    """Secure in prod, and whenever the page was served over https (behind a proxy that says so)."""
    return deps.settings.secure_cookie or request.url.scheme == "https"


@router.post("/session")
async def sign_in(body: SignInBody, deps: Deps, request: Request) -> Response:
    if not _from_own_pages(request):
        raise Forbidden("cross-origin sign-in refused")
    token = body.token.strip()
    principal = await deps.credentials.authenticate(token, "admin_token")
    if principal is None:
        raise Unauthorized("that admin token is not valid (an om_adm_... token of the owner, an admin or a member)")
    session_id = await deps.sessions.open(principal)
    answer = json_response({"signedIn": True, **_who(principal)})
    answer.set_cookie(
        SESSION_COOKIE,
        session_cookie(session_id, token),
        max_age=deps.settings.session_max_age_s,
        httponly=True,
        samesite="strict",
        secure=_secure(deps, request),
        path="/",
    )
    log.info("console_signed_in", workspace_id=principal.workspace_id, role=principal.role)
    return answer


@router.get("/session")
async def whoami(deps: Deps, session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None) -> Response:
    """Who is signed in; ``signedIn: false`` (not a 401) so the sign-in page loads without an error."""
    found = await signed_in(deps, session)
    if found is None:
        return json_response({"signedIn": False})
    return json_response({"signedIn": True, **_who(found.principal)})


@router.delete("/session")
async def sign_out(
    deps: Deps, request: Request, session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None
) -> Response:
    """Ends the session in Redis too: a copy of the cookie stops working with it."""
    if not _from_own_pages(request):
        raise Forbidden("cross-origin sign-out refused")
    parsed = parse_session_cookie(session)
    if parsed is not None:
        await deps.sessions.close(parsed[0])
    answer = Response(status_code=204)
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(deps, request))
    return answer


@router.api_route("/{service}/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
async def proxy(
    service: str,
    path: str,
    request: Request,
    session: Session,
    deps: Deps,
) -> Response:
    base = deps.settings.upstreams.get(service)
    if base is None or not forwardable(path):
        raise NotForwarded(f"/api/{service}/{path} is not a console route")
    if request.method != "GET" and not _from_own_pages(request):
        raise Forbidden("cross-origin request refused")
    headers = {k: v for k, v in request.headers.items() if k.lower() in REQUEST_HEADERS}
    headers["Authorization"] = f"Bearer {session.token}"
    try:
        upstream = await forward(
            deps.http,
            request.method,
            f"{base}/{path}",
            params=request.url.query,
            content=await request.body(),
            headers=headers,
        )
    except Exception as exc:
        log.warning("console_upstream_failed", service=service, error=type(exc).__name__)
        raise UpstreamUnavailable(f"{service} did not answer") from None
    kept = {k: v for k, v in upstream.headers.items() if k.lower() in RESPONSE_HEADERS}
    return Response(upstream.content, status_code=upstream.status_code, headers=kept)
