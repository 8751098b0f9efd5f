from dataclasses import dataclass
from typing import Annotated

from fastapi import Cookie, Depends

from opsmeter_console.bootstrap import ConsoleDeps
from opsmeter_console.domain import SESSION_COOKIE
from opsmeter_runtime.api import app_deps
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.errors import Unauthorized

Deps = Annotated[ConsoleDeps, Depends(app_deps(ConsoleDeps))]


@dataclass(frozen=True)
class SignedIn:
    """The session's admin token and who it belongs to; checked against the credentials on every call."""

    token: str
    principal: Principal


async def _signed_in(deps: Deps, session: Annotated[str | None, Cookie(alias=SESSION_COOKIE)] = None) -> SignedIn:
    principal = await deps.credentials.authenticate(session, "admin_token")
    if session is None or principal is None:
        raise Unauthorized("sign in with an admin token")
    return SignedIn(session, principal)


Session = Annotated[SignedIn, Depends(_signed_in)]
