from typing import Annotated

from fastapi import Depends, Header, Request

from opsmeter_billing.bootstrap import BillingDeps
from opsmeter_billing.errors import Forbidden, Unauthorized
from opsmeter_runtime.api import WorkspaceReader, WorkspaceWriter, app_deps
from opsmeter_runtime.auth import READ_ROLES, WRITE_ROLES, Principal, Role, bearer_token, verify_operator_token

__all__ = ["AccountReader", "AccountWriter", "Deps", "Operator", "WorkspaceReader", "WorkspaceWriter"]

Deps = Annotated[BillingDeps, Depends(app_deps(BillingDeps))]


def _token_principal(roles: frozenset[Role]):  # type: ignore[no-untyped-def]
    async def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
        store = request.app.state.deps.resources.credentials
        found: Principal | None = await store.authenticate(bearer_token(authorization), "admin_token")
        if found is None:
            raise Unauthorized("a valid admin token is required (Authorization: Bearer om_adm_...)")
        if found.role not in roles:
            raise Forbidden(f"needs one of the roles {sorted(roles)}")
        return found

    return principal


AccountReader = Annotated[Principal, Depends(_token_principal(READ_ROLES))]
"""Any admin token; the workspace is the token's own, never one named in the request."""

AccountWriter = Annotated[Principal, Depends(_token_principal(WRITE_ROLES))]
"""An owner or admin token; the workspace is the token's own."""


async def _operator(deps: Deps, x_operator_token: Annotated[str | None, Header()] = None) -> None:
    if not verify_operator_token(x_operator_token, deps.settings.runtime.operator_token_sha256):
        raise Unauthorized("a valid X-Operator-Token is required")


Operator = Annotated[None, Depends(_operator)]
