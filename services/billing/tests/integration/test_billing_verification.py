"""Periodic verification (ADR 61): a change made at Lemon Squeezy whose webhook never arrives still reaches the
workspace, through real Redis, the Kafka broker and the Lemon Squeezy HTTP double. Time is the ``now`` a run is
given, so an hour passes instantly."""

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from opsmeter_billing.adapters.lemonsqueezy import HttpLemonSqueezy
from opsmeter_billing.adapters.redis import RedisAccountStore, RedisIdempotencyStore, account_key
from opsmeter_billing.commands import Billing, Pacer
from opsmeter_billing.domain import VariantMap, checkout_claim, delivery_id
from opsmeter_billing.errors import InvalidSignature, ReconciliationRunning
from opsmeter_contracts.billing import LemonSqueezyWebhookReceived, LemonSqueezyWebhookReceivedPayload
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.lemonsqueezy_double import VARIANTS, LemonSqueezyDouble
from opsmeter_runtime.projections import PlanProjection
from opsmeter_runtime.testing import Engines

VARIANT = {"starter": 101, "pro": 102, "team": 103, "enterprise": 104}
HOUR = timedelta(hours=1)
OWN_DB = 13
"""Verification reads every linked subscription in its Redis: a database of its own keeps the e2e stack's
billing (database 0) out of these sweeps, and these accounts out of its."""


@dataclass
class World:
    billing: Billing
    accounts: RedisAccountStore
    plans: PlanProjection
    ls: LemonSqueezyDouble

    async def linked(self, workspace_id: str, plan: str = "starter") -> str:
        """A workspace whose subscription billing knows (the operator's link), not yet read from Lemon Squeezy."""
        await self.billing.open_account(workspace_id, "free", None, None)
        subscription_id = self.ls.create_subscription(VARIANT[plan])
        await self.billing.link_subscription(workspace_id, subscription_id, plan)  # type: ignore[arg-type]
        return subscription_id

    async def plan(self, workspace_id: str) -> str:
        found = await self.plans.get(workspace_id)
        assert found is not None
        return found.plan

    def reads(self) -> list[str]:
        """The subscriptions billing read from Lemon Squeezy so far, in order."""
        return [r.path.rsplit("/", 1)[1] for r in self.ls.requests if r.method == "GET"]


@pytest.fixture(scope="module")
def ls() -> Iterator[LemonSqueezyDouble]:
    with LemonSqueezyDouble() as double:
        yield double


@pytest.fixture
async def world(engines: Engines, publisher: EventPublisher, ls: LemonSqueezyDouble) -> AsyncIterator[World]:
    redis = Redis.from_url(f"{engines.redis_url.rsplit('/', 1)[0]}/{OWN_DB}")
    await redis.flushdb()
    ls.requests.clear()
    async with httpx.AsyncClient(timeout=5) as http:
        accounts = RedisAccountStore(redis)
        plans = PlanProjection(redis)
        billing = Billing(
            accounts=accounts,
            idempotency=RedisIdempotencyStore(redis),
            plans=plans,
            publisher=publisher,
            variants=VariantMap.parse(VARIANTS),
            lemonsqueezy=HttpLemonSqueezy(http, ls.url, ls.api_key, attempts=1),
            webhook_secret=ls.webhook_secret,
            verify_every=HOUR,
            pacer=Pacer(per_minute=60_000, burst=100),
        )
        yield World(billing, accounts, plans, ls)
    await redis.flushdb()
    await redis.aclose()


class TestPeriodicVerification:
    async def test_a_change_whose_webhook_never_came_is_applied_once_the_check_is_due(self, world: World) -> None:
        t0 = datetime.now(UTC)
        sub = await world.linked("ws_verify00001")
        assert (await world.billing.reconcile(t0)).checked == 1  # the fresh link
        world.ls.update(sub, variant_id=VARIANT["team"])  # at Lemon Squeezy; its webhook is lost

        early = await world.billing.reconcile(t0 + HOUR / 2)
        assert (early.checked, early.remaining) == (0, 0)
        assert await world.plan("ws_verify00001") == "starter"

        due = await world.billing.reconcile(t0 + HOUR + timedelta(minutes=1))
        assert (due.checked, due.applied, due.remaining) == (1, 1, 0)
        assert await world.plan("ws_verify00001") == "team"

    async def test_the_operators_full_reconcile_applies_it_at_once(self, world: World) -> None:
        t0 = datetime.now(UTC)
        sub = await world.linked("ws_verify00002")
        await world.billing.reconcile(t0)
        world.ls.update(sub, variant_id=VARIANT["enterprise"])

        report = await world.billing.reconcile(t0 + timedelta(minutes=1), scope="all")
        assert (report.checked, report.applied) == (1, 1)
        assert await world.plan("ws_verify00002") == "enterprise"
        assert (await world.billing.reconcile(t0 + timedelta(minutes=2), scope="due")).checked == 0

    async def test_a_run_reads_at_most_its_batch_least_recently_checked_first(self, world: World) -> None:
        world.billing.reconcile_batch = 2
        t0 = datetime.now(UTC)
        subs = [await world.linked(f"ws_verify0001{i}") for i in range(3)]
        first = await world.billing.reconcile(t0)
        second = await world.billing.reconcile(t0 + timedelta(minutes=5))
        assert (first.checked, second.checked) == (2, 1)
        assert sorted(world.reads()) == sorted(subs)

        # An hour on, the two checked first are due first; the third, checked a run later, waits for the next run.
        world.ls.requests.clear()
        later = await world.billing.reconcile(t0 + HOUR + timedelta(minutes=6))
        assert (later.checked, later.remaining) == (2, 1)
        assert sorted(world.reads()) == sorted(subs[:2])
        world.ls.requests.clear()
        assert (await world.billing.reconcile(t0 + HOUR + timedelta(minutes=11))).checked == 1
        assert world.reads() == [subs[2]]

    async def test_one_replica_reconciles_at_a_time(self, world: World) -> None:
        await world.linked("ws_verify00020")
        assert await world.accounts.acquire_reconciliation("another-replica", 30)
        with pytest.raises(ReconciliationRunning):
            await world.billing.reconcile(scope="all")
        assert world.reads() == []
        await world.accounts.release_reconciliation("another-replica")
        assert (await world.billing.reconcile(scope="all")).checked == 1

    async def test_accounts_linked_before_verification_existed_are_indexed_at_start(
        self, world: World, engines: Engines
    ) -> None:
        t0 = datetime.now(UTC)
        await world.linked("ws_verify00030")
        await world.billing.reconcile(t0)
        redis = Redis.from_url(f"{engines.redis_url.rsplit('/', 1)[0]}/{OWN_DB}")
        try:
            await redis.delete("opsmeter:{billing}:verified")  # as an older billing left it
            await redis.hdel(account_key("ws_verify00030"), "verified_at")
        finally:
            await redis.aclose()
        assert (await world.billing.reconcile(t0 + 2 * HOUR)).checked == 0
        assert await world.accounts.index_linked_accounts() == 1
        assert (await world.billing.reconcile(t0 + 2 * HOUR)).checked == 1


class TestSecretRotation:
    async def test_a_checkout_opened_under_the_previous_secret_still_claims_its_workspace(self, world: World) -> None:
        """The signing secret is rotated while a customer is on the checkout page: the delivery (signed with the
        old secret) is accepted and its claim (made under it) routes, while the old secret is kept as previous."""
        old = world.ls.webhook_secret
        rotated = replace(world.billing, webhook_secret="whsec-rotated", previous_webhook_secret=old)
        await rotated.open_account("ws_rotation001", "free", None, None)
        subscription_id = world.ls.create_subscription(VARIANT["team"])
        claim = {"workspace_id": "ws_rotation001", "workspace_claim": checkout_claim(old, "ws_rotation001")}
        body = world.ls.webhook_body(subscription_id, "subscription_created", custom_data=claim, test_mode=False)

        with pytest.raises(InvalidSignature):
            await rotated.receive_delivery(body, world.ls.sign(body, "a leaked secret"))
        await rotated.receive_delivery(body, world.ls.sign(body))  # stored on billing.webhooks: no error
        await rotated.apply_delivery(delivered(body))
        assert await world.plan("ws_rotation001") == "team"

        retired = replace(rotated, previous_webhook_secret=None)  # the rotation done: the old secret is refused
        with pytest.raises(InvalidSignature):
            await retired.receive_delivery(body, world.ls.sign(body))


def delivered(body: bytes) -> LemonSqueezyWebhookReceived:
    """The stored delivery the consumer applies (as receive_delivery writes it)."""
    now = datetime.now(UTC)
    meta = json.loads(body)["meta"]
    return LemonSqueezyWebhookReceived(
        event_id=uuid.uuid4(),
        occurred_at=now,
        ingested_at=now,
        workspace_id="ws_rotation001",
        payload=LemonSqueezyWebhookReceivedPayload(
            event_name=meta["event_name"],
            body=body.decode(),
            body_sha256=delivery_id(body),
            test_mode=meta["test_mode"],
        ),
    )
