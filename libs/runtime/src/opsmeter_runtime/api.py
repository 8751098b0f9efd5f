"""FastAPI dependencies every service's API shares, as ``Annotated`` aliases."""

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Path, Request

from opsmeter_runtime.auth import READ_ROLES, WRITE_ROLES, Principal, verify_operator_token, workspace_admin
from opsmeter_runtime.errors import Unauthorized

DepsT = TypeVar("DepsT")


async def _workspace_reader(
    request: Request,
    workspace_id: Annotated[str, Path()],
    authorization: Annotated[str | None, Header()] = None,
    x_service_token: Annotated[str | None, Header()] = None,
) -> Principal:
    resources = request.app.state.deps.resources
    if x_service_token is not None:
        if not verify_operator_token(x_service_token, resources.settings.service_token_sha256):
            raise Unauthorized("the X-Service-Token is not valid")
        return Principal(workspace_id=workspace_id, credential_id="service", kind="admin_token", role="member")
    return await workspace_admin(resources.credentials, authorization, workspace_id, roles=READ_ROLES)


async def _workspace_writer(
    request: Request,
    workspace_id: Annotated[str, Path()],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    store = request.app.state.deps.resources.credentials
    return await workspace_admin(store, authorization, workspace_id, roles=WRITE_ROLES)


WorkspaceReader = Annotated[Principal, Depends(_workspace_reader)]
"""Any admin token of the workspace in the path (owner, admin or member), or another service's token."""

WorkspaceWriter = Annotated[Principal, Depends(_workspace_writer)]
"""An owner or admin token of the workspace in the path."""


def app_deps(deps_type: type[DepsT]) -> Callable[[Request], Awaitable[DepsT]]:
    """A dependency returning the service's deps object that its lifespan put on ``app.state``.

    Async on purpose: FastAPI runs sync dependencies in a thread pool, a hop per request.
    """

    async def get(request: Request) -> DepsT:
        deps = request.app.state.deps
        if not isinstance(deps, deps_type):
            raise TypeError(f"app.state.deps is {type(deps).__name__}, not {deps_type.__name__}")
        return deps

    return get
