from typing import Annotated

from fastapi import Depends

from opsmeter_reporting.bootstrap import ReportingDeps
from opsmeter_runtime.api import WorkspaceReader, WorkspaceWriter, app_deps

__all__ = ["Deps", "WorkspaceReader", "WorkspaceWriter"]

Deps = Annotated[ReportingDeps, Depends(app_deps(ReportingDeps))]
