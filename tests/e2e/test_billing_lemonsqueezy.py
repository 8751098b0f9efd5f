"""Billing end to end: plan changes through the Lemon Squeezy double, signed webhooks, reconciliation."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from opsmeter_cli.main import app as cli
from opsmeter_cli.stack import operator_token
from opsmeter_contracts import AnyEvent, Topics, decode_event
from opsmeter_runtime.lemonsqueezy_double import LemonSqueezyDouble
from opsmeter_runtime.projections import plan_key
from tests.conftest import RunningStack

T = TypeVar("T")
VARIANT = {"starter": 101, "pro": 102, "team": 103, "enterprise": 104}


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while (result := check()) is None or result is False:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)
    return result


class Billing:
    """A workspace with a Lemon Squeezy subscription, and what its owner sees."""

    def __init__(self, stack: RunningStack, ls: LemonSqueezyDouble, plan: str = "starter", **sub: Any) -> None:
        self.stack, self.ls = stack, ls
        created = stack.create_workspace(plan)
        self.workspace_id: str = created["workspaceId"]
        self.headers = {"Authorization": f"Bearer {created['adminToken']}"}
        self.subscription_id = ls.create_subscription(VARIANT[plan], **sub)
        self.operator = {"X-Operator-Token": operator_token(stack.config)}
        wait_for(lambda: self._link(plan).status_code == 201 or None, "the subscription is linked")
        self.reconcile("due")

    @property
    def base(self) -> str:
        return self.stack.url("billing")

    def _link(self, plan: str) -> httpx.Response:
        body = {"workspaceId": self.workspace_id, "subscriptionId": self.subscription_id, "plan": plan}
        return httpx.post(f"{self.base}/v1/admin/billing/subscriptions", json=body, headers=self.operator)

    def reconcile(self, scope: str | None = None) -> dict[str, Any]:
        """The operator's reconciliation: every linked subscription, or (``due``) what the periodic run reads."""
        params = {"scope": scope} if scope else {}
        url = f"{self.base}/v1/admin/billing/reconcile"
        answer = httpx.post(url, params=params, headers=self.operator, timeout=30)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def change_plan(self, plan: str, key: str | None = None) -> httpx.Response:
        headers = {**self.headers, "Idempotency-Key": key or uuid.uuid4().hex}
        return httpx.post(
            f"{self.base}/v1/billing/subscription/change-plan", json={"plan": plan}, headers=headers, timeout=30
        )

    def plan(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.base}/v1/workspaces/{self.workspace_id}/plan", headers=self.headers)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def subscription(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.base}/v1/billing/subscription", headers=self.headers)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def deliver(self, body: bytes, **kwargs: Any) -> int:
        return self.ls.deliver(f"{self.base}/v1/billing/webhooks/lemonsqueezy", body, **kwargs)

    def delivery(self, event_name: str = "subscription_updated", **kwargs: Any) -> bytes:
        return self.ls.webhook_body(self.subscription_id, event_name, **kwargs)

    def wait_for_plan(self, plan: str) -> dict[str, Any]:
        return wait_for(lambda: (found := self.plan())["planTier"] == plan and found, f"plan {plan}")

    def barrier(self) -> None:
        """A later delivery (a new renewal date) whose effect shows every earlier delivery was handled."""
        renews = self.ls.subscription(self.subscription_id).renews_at
        assert renews is not None
        self.ls.update(self.subscription_id, renews_at=renews + timedelta(days=365))
        assert self.deliver(self.delivery()) == 200
        wanted = self.ls.resource(self.subscription_id)["attributes"]["renews_at"]
        wait_for(lambda: self.subscription()["renewsAt"] == wanted.replace(".000000Z", "Z"), "the barrier delivery")


def billing_events(stack: RunningStack, workspace_id: str, until: Callable[[list[AnyEvent]], bool]) -> list[AnyEvent]:
    """The events of ``billing.subscriptions`` for one workspace, read until ``until`` holds (30 s at most)."""

    async def read() -> list[AnyEvent]:
        consumer = AIOKafkaConsumer(
            Topics.BILLING_SUBSCRIPTIONS, bootstrap_servers=stack.engines.kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        seen: list[AnyEvent] = []
        try:
            async with asyncio.timeout(30):
                while not until(seen):
                    for records in (await consumer.getmany(timeout_ms=200)).values():
                        events = (decode_event(r.value) for r in records if r.value)
                        seen.extend(e for e in events if e.workspace_id == workspace_id)
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(read())


def plan_changes(events: list[AnyEvent]) -> list[tuple[str, str]]:
    return [(e.payload.from_plan, e.payload.to_plan) for e in events if e.type == "billing.plan_changed"]


@pytest.fixture
def billing(stack: RunningStack, lemonsqueezy: LemonSqueezyDouble) -> Billing:
    return Billing(stack, lemonsqueezy)


class TestChangePlan:
    def test_a_change_waits_for_the_signed_webhook_then_the_plan_follows(self, billing: Billing) -> None:
        answer = billing.change_plan("pro")
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "pending_webhook"
        assert billing.plan()["planTier"] == "starter"
        shown = billing.subscription()
        assert shown["plan"] == "starter"
        assert shown["pendingChange"]["plan"] == "pro"
        assert billing.ls.subscription(billing.subscription_id).variant_id == VARIANT["pro"]

        assert billing.deliver(billing.delivery()) == 200
        assert billing.wait_for_plan("pro")["rateLimitPerMinute"] == 600
        shown = billing.subscription()
        assert shown["pendingChange"] is None
        assert shown["status"] == "active"
        assert shown["renewsAt"] is not None

    def test_the_same_idempotency_key_answers_the_first_request_again(self, billing: Billing) -> None:
        first = billing.change_plan("team", key="k-1")
        again = billing.change_plan("team", key="k-1")
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        patches = [r for r in billing.ls.patches() if r.path.endswith(f"/{billing.subscription_id}")]
        assert len(patches) == 1
        assert billing.change_plan("pro", key="k-1").json()["reason"] == "idempotency_key_reused"

    def test_rate_limits_and_server_errors_from_lemon_squeezy_are_retried(self, billing: Billing) -> None:
        billing.ls.fail_next(429, 503)
        assert billing.change_plan("team").status_code == 202
        assert billing.ls.subscription(billing.subscription_id).variant_id == VARIANT["team"]

    def test_a_paypal_subscription_is_sent_to_the_customer_portal(
        self, stack: RunningStack, lemonsqueezy: LemonSqueezyDouble
    ) -> None:
        paypal = Billing(stack, lemonsqueezy, payment_processor="paypal")
        answer = paypal.change_plan("pro")
        assert answer.status_code == 409
        assert answer.json()["customerPortalUrl"].startswith(lemonsqueezy.url)
        assert paypal.subscription()["pendingChange"] is None

    def test_a_change_needs_an_idempotency_key_and_an_admin_token(self, billing: Billing) -> None:
        url = f"{billing.base}/v1/billing/subscription/change-plan"
        assert httpx.post(url, json={"plan": "pro"}, headers=billing.headers).status_code == 422
        assert httpx.post(url, json={"plan": "pro"}, headers={"Idempotency-Key": "x"}).status_code == 401

    def test_the_portal_link_is_lemon_squeezys(self, billing: Billing) -> None:
        answer = httpx.get(f"{billing.base}/v1/billing/portal", headers=billing.headers)
        assert answer.status_code == 200
        assert answer.json()["url"].startswith(billing.ls.url)


class TestWebhooks:
    def test_a_bad_or_missing_signature_is_refused_and_changes_nothing(self, billing: Billing) -> None:
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["team"])
        body = billing.delivery()
        assert billing.deliver(body, signature=billing.ls.sign(body, "not-the-secret")) == 401
        assert billing.deliver(body, signature="") == 401
        assert billing.deliver(body + b" ", signature=billing.ls.sign(body)) == 401
        assert billing.plan()["planTier"] == "starter"

    def test_the_same_delivery_twice_is_applied_once(self, billing: Billing) -> None:
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["pro"])
        body = billing.delivery()
        assert billing.deliver(body) == 200
        assert billing.deliver(body) == 200
        billing.wait_for_plan("pro")
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["team"])
        assert billing.deliver(billing.delivery()) == 200
        events = billing_events(billing.stack, billing.workspace_id, lambda seen: ("pro", "team") in plan_changes(seen))
        assert plan_changes(events) == [("starter", "pro"), ("pro", "team")]

    def test_an_older_update_after_a_newer_one_is_ignored(self, billing: Billing) -> None:
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["pro"])
        older = billing.delivery()
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["team"])
        newer = billing.delivery()
        assert billing.deliver(newer) == 200
        billing.wait_for_plan("team")
        assert billing.deliver(older) == 200
        billing.barrier()
        assert billing.plan()["planTier"] == "team"

    def test_a_test_mode_delivery_never_touches_a_live_workspace(self, billing: Billing) -> None:
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["enterprise"])
        assert billing.deliver(billing.delivery(test_mode=True)) == 200
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["starter"])
        billing.barrier()
        assert billing.plan()["planTier"] == "starter"

    def test_an_unknown_variant_changes_nothing_and_raises_an_alert(self, billing: Billing) -> None:
        billing.ls.update(billing.subscription_id, variant_id=999)
        assert billing.deliver(billing.delivery()) == 200
        events = billing_events(billing.stack, billing.workspace_id, lambda seen: any(_alert(e) for e in seen))
        assert [_alert(e) for e in events if _alert(e)] == ["unknown_variant"]
        assert billing.plan()["planTier"] == "starter"
        alerts_url = f"{billing.stack.url('alerting')}/v1/workspaces/{billing.workspace_id}/alerts"
        [told] = wait_for(
            lambda: (
                [
                    a
                    for a in httpx.get(alerts_url, headers=billing.headers).json()["alerts"]
                    if a["rule"] == "billing:unknown_variant"
                ]
                or None
            ),
            "the owner is told",
        )
        assert told["title"] == "Your subscription change could not be applied: your plan has not changed"
        assert told["severity"] == "critical"

    def test_a_delivery_moving_a_subscription_to_another_workspace_is_refused(
        self, billing: Billing, stack: RunningStack
    ) -> None:
        other = stack.create_workspace("starter")["workspaceId"]
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["team"])
        assert billing.deliver(billing.delivery(custom_data={"workspace_id": other})) == 200
        events = billing_events(stack, billing.workspace_id, lambda seen: any(_alert(e) for e in seen))
        assert [_alert(e) for e in events if _alert(e)] == ["subscription_reassignment_rejected"]
        assert billing.plan()["planTier"] == "starter"

    def test_unknown_event_names_are_accepted_without_effect(self, billing: Billing) -> None:
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["pro"])
        assert billing.deliver(billing.delivery("order_created")) == 200
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["starter"])
        billing.barrier()
        assert billing.plan()["planTier"] == "starter"

    def test_a_free_workspace_subscribes_through_a_checkout_and_its_subscription_claims_it(
        self, stack: RunningStack, lemonsqueezy: LemonSqueezyDouble
    ) -> None:
        created = stack.create_workspace("free")
        workspace_id, headers = created["workspaceId"], {"Authorization": f"Bearer {created['adminToken']}"}
        wait_for(lambda: _plan_of(stack, workspace_id) == "free" or None, "the workspace's first plan")
        answer = httpx.post(
            f"{stack.url('billing')}/v1/billing/checkout",
            json={"plan": "pro", "redirectUrl": "https://console.example.com/billing?checkout=done"},
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        checkout_id = answer.json()["url"].split("/checkout/custom/")[1].split("?")[0]
        checkout = lemonsqueezy.checkouts[checkout_id]
        assert (checkout.variant_id, checkout.custom["workspace_id"]) == (VARIANT["pro"], workspace_id)
        assert checkout.redirect_url == "https://console.example.com/billing?checkout=done"

        subscription_id, body = lemonsqueezy.complete_checkout(checkout_id)
        assert lemonsqueezy.deliver(f"{stack.url('billing')}/v1/billing/webhooks/lemonsqueezy", body) == 200
        wait_for(lambda: _plan_of(stack, workspace_id) == "pro" or None, "the plan of the new subscription")
        shown = httpx.get(f"{stack.url('billing')}/v1/billing/subscription", headers=headers).json()
        assert (shown["subscriptionId"], shown["status"]) == (subscription_id, "active")

        again = httpx.post(f"{stack.url('billing')}/v1/billing/checkout", json={"plan": "team"}, headers=headers)
        assert (again.status_code, again.json()["reason"]) == (409, "subscription_exists")

    def test_a_subscription_claiming_a_workspace_by_custom_data_alone_changes_nothing(
        self, stack: RunningStack, lemonsqueezy: LemonSqueezyDouble
    ) -> None:
        """Anyone can open a Lemon Squeezy checkout with ``checkout[custom][workspace_id]`` set to any workspace;
        without billing's proof the subscription claims nothing, and the workspace can still subscribe itself."""
        created = stack.create_workspace("free")
        workspace_id, headers = created["workspaceId"], {"Authorization": f"Bearer {created['adminToken']}"}
        wait_for(lambda: _plan_of(stack, workspace_id) == "free" or None, "the workspace's first plan")
        forged = lemonsqueezy.create_subscription(VARIANT["starter"])
        body = lemonsqueezy.webhook_body(forged, "subscription_created", custom_data={"workspace_id": workspace_id})
        url = f"{stack.url('billing')}/v1/billing/webhooks/lemonsqueezy"
        assert lemonsqueezy.deliver(url, body) == 200

        answer = httpx.post(f"{stack.url('billing')}/v1/billing/checkout", json={"plan": "team"}, headers=headers)
        assert answer.status_code == 201, answer.text
        _, paid = lemonsqueezy.complete_checkout(answer.json()["url"].split("/checkout/custom/")[1].split("?")[0])
        assert lemonsqueezy.deliver(url, paid) == 200
        wait_for(lambda: _plan_of(stack, workspace_id) == "team" or None, "the plan the workspace paid for")
        shown = httpx.get(f"{stack.url('billing')}/v1/billing/subscription", headers=headers).json()
        assert shown["subscriptionId"] != forged

    def test_a_checkout_names_the_field_it_refuses(self, billing: Billing) -> None:
        url = f"{billing.base}/v1/billing/checkout"
        answer = httpx.post(url, json={"plan": "pro", "redirectUrl": "javascript:alert(1)"}, headers=billing.headers)
        assert answer.status_code == 422
        assert [e["field"] for e in answer.json()["errors"]] == ["redirectUrl"]
        gold = httpx.post(url, json={"plan": "gold"}, headers=billing.headers)
        assert (gold.status_code, [e["field"] for e in gold.json()["errors"]]) == (422, ["plan"])


class TestReconciliation:
    def test_a_dropped_webhook_is_repaired_by_reconciliation(self, billing: Billing) -> None:
        assert billing.change_plan("team").status_code == 202
        assert billing.reconcile()["applied"] >= 1
        assert billing.plan()["planTier"] == "team"
        shown = billing.subscription()
        assert shown["plan"] == "team"
        assert shown["pendingChange"] is None

    def test_a_change_at_lemon_squeezy_whose_webhook_never_came_is_applied_by_the_operators_reconcile(
        self, billing: Billing
    ) -> None:
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["pro"])  # no delivery
        assert billing.reconcile("due")["checked"] == 0  # checked at the link, not due for an hour
        assert billing.plan()["planTier"] == "starter"
        answer = billing.reconcile()
        assert answer["scope"] == "all"
        assert answer["applied"] >= 1
        assert answer["remaining"] == 0
        assert billing.plan()["planTier"] == "pro"

    def test_an_unknown_scope_is_refused(self, stack: RunningStack) -> None:
        url = f"{stack.url('billing')}/v1/admin/billing/reconcile"
        operator = {"X-Operator-Token": operator_token(stack.config)}
        answer = httpx.post(url, params={"scope": "everything"}, headers=operator)
        assert answer.status_code == 422, answer.text
        assert "scope" in answer.text


class TestOperatorPlan:
    def test_an_operator_set_plan_reaches_the_projection_and_is_announced(self, billing: Billing) -> None:
        answer = httpx.put(
            f"{billing.stack.url('ingest-gateway')}/v1/admin/workspaces/{billing.workspace_id}/plan",
            json={"plan": "enterprise", "rateLimitPerMinute": 7000},
            headers=billing.operator,
        )
        assert answer.status_code == 202, answer.text
        assert billing.wait_for_plan("enterprise")["rateLimitPerMinute"] == 7000
        events = billing_events(billing.stack, billing.workspace_id, lambda seen: bool(plan_changes(seen)))
        assert plan_changes(events) == [("starter", "enterprise")]


class TestLinkSubscriptionCommand:
    def test_the_cli_records_an_existing_subscription(
        self, stack: RunningStack, lemonsqueezy: LemonSqueezyDouble
    ) -> None:
        workspace_id = stack.create_workspace("free")["workspaceId"]
        subscription_id = lemonsqueezy.create_subscription(VARIANT["team"])
        env = {"OPSMETER_BILLING_URL": stack.url("billing"), "OPSMETER_OPERATOR_TOKEN": operator_token(stack.config)}
        argv = ["workspace", "link-subscription", "--workspace", workspace_id]
        argv += ["--subscription", subscription_id, "--plan", "team"]

        def link() -> bool:
            return CliRunner().invoke(cli, argv, env=env).exit_code == 0

        wait_for(link, "the CLI links the subscription")
        assert _plan_of(stack, workspace_id) == "team"

    def test_the_cli_reads_every_linked_subscription_now(self, billing: Billing) -> None:
        billing.ls.update(billing.subscription_id, variant_id=VARIANT["team"])  # its webhook never comes
        env = {"OPSMETER_BILLING_URL": billing.base, "OPSMETER_OPERATOR_TOKEN": operator_token(billing.stack.config)}
        result = CliRunner().invoke(cli, ["workspace", "reconcile-subscriptions", "--json"], env=env)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["applied"] >= 1
        assert billing.plan()["planTier"] == "team"


def _alert(event: AnyEvent) -> str | None:
    return str(event.payload.kind) if event.type == "billing.alert_raised" else None


def _plan_of(stack: RunningStack, workspace_id: str) -> str | None:
    """The plan the billing projection holds, read the way the gateway does (Redis)."""
    import redis

    client = redis.Redis.from_url(stack.engines.redis_url)
    try:
        plan = client.hget(plan_key(workspace_id), "plan")
    finally:
        client.close()
    return plan.decode() if isinstance(plan, bytes) else None
