from typing import Annotated

from fastapi import Depends

from opsmeter_ingest.bootstrap import GatewayDeps
from opsmeter_runtime.api import WorkspaceReader, WorkspaceWriter, app_deps

__all__ = ["Deps", "WorkspaceReader", "WorkspaceWriter"]

Deps = Annotated[GatewayDeps, Depends(app_deps(GatewayDeps))]
