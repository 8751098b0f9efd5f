"""The whole stack (five services as processes) on the session's real engines."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opsmeter_alerting.testing import SmtpReceiver
from opsmeter_cli.stack import SERVICES, Stack, StackConfig, operator_token
from opsmeter_runtime.lemonsqueezy_double import LemonSqueezyDouble
from opsmeter_runtime.localstack import free_port
from opsmeter_runtime.testing import Engines


@dataclass(frozen=True)
class RunningStack:
    config: StackConfig
    engines: Engines

    def url(self, service: str) -> str:
        return self.config.url(service)

    def create_workspace(self, plan: str = "starter") -> dict[str, Any]:
        answer = httpx.post(
            f"{self.url('ingest-gateway')}/v1/admin/workspaces",
            json={"name": "test", "plan": plan},
            headers={"X-Operator-Token": operator_token(self.config)},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        self.wait_for_plan(created, plan)
        return created

    def wait_for_plan(self, workspace: dict[str, Any], plan: str, timeout: float = 10.0) -> None:
        """Billing projects a new workspace's plan asynchronously; plan-gated calls need it first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = httpx.get(
                f"{self.url('billing')}/v1/workspaces/{workspace['workspaceId']}/plan",
                headers={"Authorization": f"Bearer {workspace['adminToken']}"},
            )
            if answer.status_code == 200 and answer.json()["planTier"] == plan:
                return
            time.sleep(0.05)
        raise AssertionError(f"billing did not project the {plan} plan within {timeout}s")


@pytest.fixture(scope="session")
def lemonsqueezy() -> Iterator[LemonSqueezyDouble]:
    """The Lemon Squeezy test double billing talks to in the stack."""
    with LemonSqueezyDouble() as double:
        yield double


@pytest.fixture(scope="session")
def smtp_receiver() -> Iterator[SmtpReceiver]:
    """The local SMTP server alerting sends email through in the stack."""
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def stack(
    engines: Engines,
    tmp_path_factory: pytest.TempPathFactory,
    lemonsqueezy: LemonSqueezyDouble,
    smtp_receiver: SmtpReceiver,
) -> Iterator[RunningStack]:
    config = StackConfig(
        data_dir=tmp_path_factory.mktemp("stack"),
        broker_port=0,
        redis_port=0,
        service_ports={s.name: free_port() for s in SERVICES},
        external_kafka=engines.kafka_bootstrap,
        external_redis=engines.redis_url,
        clickhouse_url=engines.clickhouse_url,
        extra_env={
            "OPSMETER_ENV": "test",
            "OPSMETER_LOG_LEVEL": "WARNING",
            **lemonsqueezy.service_env(),
            "OPSMETER_SMTP_URL": smtp_receiver.url,
        },
    )
    running = Stack(config)
    running.start(timeout=180)
    started = RunningStack(config, engines)
    lemonsqueezy.webhook_url = f"{started.url('billing')}/v1/billing/webhooks/lemonsqueezy"
    try:
        yield started
    finally:
        running.stop()
