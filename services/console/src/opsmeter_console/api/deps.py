from dataclasses import dataclass
from typing import Annotated

from fastapi import Cookie, Depends

from opsmeter_console.bootstrap import ConsoleDeps
from opsmeter_console.domain import SESSION_COOKIE, parse_session_cookie
from opsmeter_runtime.api import app_deps
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.errors import Unauthorized

Deps = Annotated[ConsoleDeps, Depends(app_deps(ConsoleDeps))]


@dataclass(frozen=True)
class SignedIn:
    """The session's admin token and who it belongs to; checked against the credentials on every call."""

    session_id: str
    token: str
    principal: Principal


async def signed_in(deps: ConsoleDeps, cookie: str | None) -> SignedIn | None:
    """The cookie's session when it is open, opened with this token, and the token is still valid."""
    parsed = parse_session_cookie(cookie)
    if parsed is None:
        return None
    session_id, token = parsed
    principal = await deps.credentials.authenticate(token, "admin_token")
    if principal is None or not await deps.sessions.holds(session_id, principal):
        return None
    return SignedIn(session_id, token, principal)


async def _signed_in(deps: Deps, session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None) -> SignedIn:
    found = await signed_in(deps, session)
    if found is None:
        raise Unauthorized("sign in with an admin token (the session ended, or the token was revoked)")
    return found


Session = Annotated[SignedIn, Depends(_signed_in)]
