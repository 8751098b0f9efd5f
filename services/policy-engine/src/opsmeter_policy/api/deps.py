from typing import Annotated

from fastapi import Depends

from opsmeter_policy.bootstrap import PolicyDeps
from opsmeter_runtime.api import WorkspaceReader, WorkspaceWriter, app_deps

__all__ = ["Deps", "WorkspaceReader", "WorkspaceWriter"]

Deps = Annotated[PolicyDeps, Depends(app_deps(PolicyDeps))]
