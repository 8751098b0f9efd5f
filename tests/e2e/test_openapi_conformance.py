"""Every service answers as its OpenAPI schema says (issue 20, finding 7): schemathesis generates requests
for every operation, with the caller's own credentials and workspace, and checks each answer: no 5xx, a
documented status code and content type, a body matching the declared model."""

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from opsmeter_cli.stack import operator_token
from tests.conftest import RunningStack

SERVICES = ["ingest-gateway", "reporting", "policy-engine", "alerting", "billing"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def workspace(stack: RunningStack) -> dict[str, Any]:
    return stack.create_workspace("enterprise")


def _headers(stack: RunningStack, workspace: dict[str, Any], path: str) -> dict[str, str]:
    if path.startswith("/v1/admin"):
        return {"X-Operator-Token": operator_token(stack.config)}
    return {"Authorization": f"Bearer {workspace['adminToken']}", "X-API-Key": workspace["apiKey"]}


def _operations(stack: RunningStack, service: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{stack.url(service)}/openapi.json")
    operations: list[Any] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_answers_as_documented(stack: RunningStack, workspace: dict[str, Any], service: str) -> None:
    failures: list[str] = []
    for operation in _operations(stack, service):
        check = _checker(stack, workspace, operation, failures)
        given(case=operation.as_strategy())(
            settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
            )(check)
        )()
    assert not failures, "\n".join(failures)


def _checker(
    stack: RunningStack, workspace: dict[str, Any], operation: Any, failures: list[str]
) -> Callable[[Any], None]:
    def check(case: Any) -> None:
        if "workspace_id" in (case.path_parameters or {}):
            case.path_parameters["workspace_id"] = workspace["workspaceId"]
        try:
            case.call_and_validate(
                base_url=stack.url(_service_of(stack, operation)),
                headers=_headers(stack, workspace, operation.path),
                checks=CHECKS,
                timeout=30,
            )
        except Exception as exc:  # every failure is collected, then reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
            raise

    return check


def _service_of(stack: RunningStack, operation: Any) -> str:
    base = operation.schema.get_base_url()
    return next(s for s in SERVICES if stack.url(s).rstrip("/") == base.rstrip("/"))
