from typing import Annotated

from fastapi import Depends

from opsmeter_billing.bootstrap import BillingDeps
from opsmeter_runtime.api import WorkspaceReader, WorkspaceWriter, app_deps

__all__ = ["Deps", "WorkspaceReader", "WorkspaceWriter"]

Deps = Annotated[BillingDeps, Depends(app_deps(BillingDeps))]
