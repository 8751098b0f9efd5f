"""Alerts end to end: settings, a budget crossing on the policy engine, real webhook/Slack/SMTP receivers."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmeter_alerting.domain import verify_signature
from opsmeter_alerting.testing import HttpReceiver, SmtpReceiver
from tests.conftest import RunningStack
from tests.e2e.test_ingest_to_usage import eventually
from tests.e2e.test_policy_budgets import Workspace

SECRET = "whsec_e2e_" + "k" * 16


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as http:
        yield http


class WorkspaceOn(Workspace):
    """A workspace on the given plan (``Workspace`` creates one on Starter)."""

    def __init__(self, stack: RunningStack, plan: str) -> None:
        created = stack.create_workspace(plan=plan)
        self.stack, self.id, self.api_key = stack, created["workspaceId"], created["apiKey"]
        self.auth = {"Authorization": f"Bearer {created['adminToken']}"}


def alerts_url(stack: RunningStack, ws: Workspace, path: str = "") -> str:
    return f"{stack.url('alerting')}/v1/workspaces/{ws.id}/alerts{path}"


def settings_body(ws: Workspace, receiver: HttpReceiver, **extra: Any) -> dict[str, Any]:
    return {
        "channels": [
            {"type": "webhook", "url": receiver.url(f"/hook/{ws.id}"), "secret": SECRET},
            {"type": "slack", "url": receiver.url(f"/slack/{ws.id}")},
            {"type": "email", "to": [f"ops-{ws.id}@example.test"]},
        ],
        **extra,
    }


def configure(stack: RunningStack, ws: Workspace, receiver: HttpReceiver) -> None:
    answer = httpx.put(alerts_url(stack, ws, "/settings"), json=settings_body(ws, receiver), headers=ws.auth)
    assert answer.status_code == 200, answer.text


def wait_for_all_channels(ws: Workspace, receiver: HttpReceiver, smtp_receiver: SmtpReceiver) -> None:
    eventually(
        lambda: (
            receiver.on(f"/hook/{ws.id}")
            and receiver.on(f"/slack/{ws.id}")
            and smtp_receiver.to(f"ops-{ws.id}@example.test")
        ),
        timeout=20,
    )


class TestAlertSettings:
    def test_round_trip_hides_secrets_and_checks_roles_and_plans(
        self, stack: RunningStack, receiver: HttpReceiver
    ) -> None:
        ws = Workspace(stack)
        body = settings_body(ws, receiver, schedule={"sendTime": "09:00", "timezone": "Europe/Berlin"})
        put = httpx.put(alerts_url(stack, ws, "/settings"), json=body, headers=ws.auth, timeout=30)
        assert put.status_code == 200, put.text
        got = httpx.get(alerts_url(stack, ws, "/settings"), headers=ws.auth).json()
        assert got["cooldownSeconds"] == 300
        assert got["schedule"] == {"sendTime": "09:00", "timezone": "Europe/Berlin"}
        assert SECRET not in str(got)
        assert got["channels"][0]["secretHint"] == "••••kkkk"
        assert httpx.get(alerts_url(stack, ws, "/settings")).status_code == 401
        bad = httpx.put(
            alerts_url(stack, ws, "/settings"),
            json={"schedule": {"sendTime": "25:00", "timezone": "Mars/Base"}},
            headers=ws.auth,
        )
        assert bad.status_code == 422

        free = stack.create_workspace(plan="free")
        answer = httpx.put(
            f"{stack.url('alerting')}/v1/workspaces/{free['workspaceId']}/alerts/settings",
            json={"modes": {"budget": "daily_summary"}},
            headers={"Authorization": f"Bearer {free['adminToken']}"},
        )
        assert answer.status_code == 403
        assert answer.json()["reason"] == "plan_required"
        assert answer.json()["requiredPlan"] == "starter"


class TestBudgetAlerts:
    def test_a_crossing_reaches_webhook_slack_and_email_once(
        self, stack: RunningStack, receiver: HttpReceiver, smtp_receiver: SmtpReceiver
    ) -> None:
        ws = Workspace(stack)
        configure(stack, ws, receiver)
        assert ws.put("budgets", {"dailyUsd": 1.0, "warningThresholdRatio": 0.5}).status_code == 200
        ws.ingest_counted()
        ws.ingest_counted()  # $0.60: past the 50 % warning, under the limit

        wait_for_all_channels(ws, receiver, smtp_receiver)
        log = eventually(
            lambda: [
                a
                for a in httpx.get(alerts_url(stack, ws), headers=ws.auth).json()["alerts"]
                if a["status"] == "delivered"
            ],
            timeout=10,
        )
        hooks = receiver.on(f"/hook/{ws.id}")
        assert (
            len(hooks),
            len(receiver.on(f"/slack/{ws.id}")),
            len(smtp_receiver.to(f"ops-{ws.id}@example.test")),
        ) == (1, 1, 1)
        hook = hooks[0]
        assert hook.json()["rule"] == "budget_warning:0.5"
        assert verify_signature(
            SECRET,
            int(hook.headers["x-opsmeter-timestamp"]),
            hook.body,
            hook.headers["x-opsmeter-signature"],
            now=int(hook.headers["x-opsmeter-timestamp"]),
        )
        assert [len(d["attempts"]) for d in log[0]["deliveries"]] == [1, 1, 1]

    def test_free_sees_the_crossing_as_plan_required_while_starter_gets_it_delivered(
        self, stack: RunningStack, receiver: HttpReceiver, smtp_receiver: SmtpReceiver
    ) -> None:
        free, starter = WorkspaceOn(stack, "free"), WorkspaceOn(stack, "starter")
        for ws in (free, starter):
            configure(stack, ws, receiver)
            assert ws.put("budgets", {"dailyUsd": 1.0, "warningThresholdRatio": 0.5}).status_code == 200
            ws.ingest_counted()
            ws.ingest_counted()  # $0.60: past the 50 % warning, under the limit

        wait_for_all_channels(starter, receiver, smtp_receiver)
        [delivered] = eventually(
            lambda: [
                a
                for a in httpx.get(alerts_url(stack, starter), headers=starter.auth).json()["alerts"]
                if a["status"] == "delivered"
            ],
            timeout=10,
        )
        assert delivered["rule"] == "budget_warning:0.5"

        [recorded] = eventually(lambda: httpx.get(alerts_url(stack, free), headers=free.auth).json()["alerts"])
        assert (recorded["rule"], recorded["status"], recorded["requiredPlan"], recorded["deliveries"]) == (
            "budget_warning:0.5",
            "plan_required",
            "starter",
            [],
        )
        assert receiver.on(f"/hook/{free.id}") == []
        assert receiver.on(f"/slack/{free.id}") == []
        assert smtp_receiver.to(f"ops-{free.id}@example.test") == []

    def test_a_test_alert_goes_through_every_channel(
        self, stack: RunningStack, receiver: HttpReceiver, smtp_receiver: SmtpReceiver
    ) -> None:
        ws = Workspace(stack)
        configure(stack, ws, receiver)
        answer = httpx.post(alerts_url(stack, ws, "/test"), headers=ws.auth)
        assert answer.status_code == 202, answer.text
        wait_for_all_channels(ws, receiver, smtp_receiver)
        assert "test alert" in receiver.on(f"/slack/{ws.id}")[0].json()["text"]
