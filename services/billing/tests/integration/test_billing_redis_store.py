import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from opsmeter_billing.adapters import StoredReply
from opsmeter_billing.adapters.redis import RedisAccountStore, RedisIdempotencyStore
from opsmeter_billing.domain import BillingAccount, PendingChange

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


class TestRedisAccountStore:
    async def test_an_account_round_trips(self, redis_client: Redis, unique: str) -> None:
        store = RedisAccountStore(redis_client)
        ws = f"ws_{unique}"
        account = BillingAccount(
            ws, "pro", 900, None, "1001", 102, "active", T0, None, T0, "https://portal", False,
            PendingChange("team", 103, T0), "pro", True,
        )  # fmt: skip
        await store.update(ws, lambda current: (account, None))
        assert await store.get(ws) == account

    async def test_concurrent_updates_never_lose_a_write(self, redis_client: Redis, unique: str) -> None:
        store = RedisAccountStore(redis_client)
        ws = f"ws_{unique}"
        await store.update(ws, lambda _: (BillingAccount(ws, "free", rate_limit_override=0), None))

        def bump(current: BillingAccount | None) -> tuple[BillingAccount | None, None]:
            assert current is not None
            return replace(current, rate_limit_override=(current.rate_limit_override or 0) + 1), None

        await asyncio.gather(*(store.update(ws, bump) for _ in range(25)))
        found = await store.get(ws)
        assert found is not None
        assert found.rate_limit_override == 25

    async def test_due_workspaces_are_pending_linked_or_overdue(self, redis_client: Redis, unique: str) -> None:
        store = RedisAccountStore(redis_client)
        overdue, later = f"ws_{unique}a", f"ws_{unique}b"
        for ws, renews in ((overdue, T0 - timedelta(days=2)), (later, T0 + timedelta(days=2))):
            account = BillingAccount(ws, "pro", subscription_id=f"s{ws}", renews_at=renews)
            await store.update(ws, lambda _, a=account: (a, None))  # type: ignore[misc]
        due = await store.due_for_reconciliation(T0.timestamp(), 10_000)
        assert overdue in due
        assert later not in due

    async def test_a_subscription_belongs_to_the_first_workspace_that_claims_it(
        self, redis_client: Redis, unique: str
    ) -> None:
        store = RedisAccountStore(redis_client)
        assert await store.claim(f"sub_{unique}", "ws_first0000") == "ws_first0000"
        assert await store.claim(f"sub_{unique}", "ws_second000") == "ws_first0000"


class TestRedisIdempotencyStore:
    async def test_a_key_replays_its_first_answer_and_refuses_another_body(
        self, redis_client: Redis, unique: str
    ) -> None:
        store = RedisIdempotencyStore(redis_client)
        ws = f"ws_{unique}"
        assert await store.begin(ws, "k", "pro") is None
        assert await store.begin(ws, "k", "pro") == "in_progress"
        await store.finish(ws, "k", "pro", StoredReply(202, {"status": "pending_webhook"}))
        assert await store.begin(ws, "k", "pro") == StoredReply(202, {"status": "pending_webhook"})
        assert await store.begin(ws, "k", "team") == "key_reused"
        await store.abandon(ws, "k")
        assert await store.begin(ws, "k", "team") is None
