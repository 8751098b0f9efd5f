"""FastAPI dependencies every service's API shares, as ``Annotated`` aliases."""

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Path, Request

from opsmeter_runtime.auth import READ_ROLES, WRITE_ROLES, Principal, workspace_admin

DepsT = TypeVar("DepsT")


async def _workspace_reader(
    request: Request,
    workspace_id: Annotated[str, Path()],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    store = request.app.state.deps.resources.credentials
    return await workspace_admin(store, authorization, workspace_id, roles=READ_ROLES)


async def _workspace_writer(
    request: Request,
    workspace_id: Annotated[str, Path()],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    store = request.app.state.deps.resources.credentials
    return await workspace_admin(store, authorization, workspace_id, roles=WRITE_ROLES)


WorkspaceReader = Annotated[Principal, Depends(_workspace_reader)]
"""Any admin token of the workspace in the path (owner, admin or member)."""

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
