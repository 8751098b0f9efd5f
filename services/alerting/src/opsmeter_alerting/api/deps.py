from typing import Annotated

from fastapi import Depends

from opsmeter_alerting.bootstrap import AlertingDeps
from opsmeter_runtime.api import WorkspaceReader, WorkspaceWriter, app_deps

__all__ = ["Deps", "WorkspaceReader", "WorkspaceWriter"]

Deps = Annotated[AlertingDeps, Depends(app_deps(AlertingDeps))]
