"""Ports of the billing service. The plan projection lives in ``opsmeter_runtime.projections``."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from opsmeter_billing.domain import BillingAccount

T = TypeVar("T")

Decide = Callable[[BillingAccount | None], tuple[BillingAccount | None, T]]
"""Given the stored account (None: none yet), the account to store (None: leave it) and a result."""


class AccountStore(Protocol):
    async def get(self, workspace_id: str) -> BillingAccount | None: ...

    async def update(self, workspace_id: str, decide: Decide[T]) -> T:
        """Read, decide and write atomically: a concurrent writer makes ``decide`` run again on fresh state."""

    async def owner_of(self, subscription_id: str) -> str | None: ...

    async def claim(self, subscription_id: str, workspace_id: str) -> str:
        """Map a subscription to a workspace unless it is mapped already; the owner either way."""

    async def delivery_seen(self, delivery_id: str) -> bool: ...

    async def mark_delivery(self, delivery_id: str) -> None: ...

    async def due_for_reconciliation(self, renewed_before_epoch: float, limit: int) -> list[str]:
        """Workspaces with a pending change or fresh link, or whose renewal date is before the given time."""

    async def least_recently_verified(self, checked_before_epoch: float, limit: int) -> list[str]:
        """Workspaces with a subscription last read from Lemon Squeezy at or before the given time, oldest first."""

    async def count_unverified(self, checked_before_epoch: float) -> int:
        """How many workspaces with a subscription were last read from Lemon Squeezy at or before the given time."""

    async def acquire_reconciliation(self, token: str, ttl_s: float) -> bool:
        """Hold the one reconciliation lease of all replicas for ``ttl_s`` at most; False: another one holds it."""

    async def release_reconciliation(self, token: str) -> None:
        """Give the lease back if ``token`` still holds it."""


@dataclass(frozen=True)
class StoredReply:
    status_code: int
    body: Mapping[str, Any]


class IdempotencyStore(Protocol):
    async def begin(self, workspace_id: str, key: str, fingerprint: str) -> StoredReply | str | None:
        """None: go ahead. A reply: the first request's answer. A string: why this request cannot run now."""

    async def finish(self, workspace_id: str, key: str, fingerprint: str, reply: StoredReply) -> None: ...

    async def abandon(self, workspace_id: str, key: str) -> None:
        """Forget a request that failed before any effect, so that a retry with the same key runs."""


class LemonSqueezyError(Exception):
    """Lemon Squeezy could not be reached or kept failing (429/5xx) after the retries."""


class LemonSqueezyRejected(LemonSqueezyError):
    """Lemon Squeezy refused the request (4xx other than 429)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"Lemon Squeezy answered {status_code}: {detail}")
        self.status_code = status_code


class LemonSqueezyApi(Protocol):
    async def get_subscription(self, subscription_id: str) -> Mapping[str, Any]:
        """The JSON:API ``data`` object of ``GET /v1/subscriptions/{id}``."""

    async def change_variant(self, subscription_id: str, variant_id: int) -> Mapping[str, Any]:
        """``PATCH /v1/subscriptions/{id}`` with ``variant_id``; the ``data`` object it answers."""

    async def create_checkout(
        self, store_id: str, variant_id: int, custom: Mapping[str, str], redirect_url: str | None
    ) -> Mapping[str, Any]:
        """``POST /v1/checkouts`` for the variant with ``checkout_data.custom``; the ``data`` object it answers
        (``attributes.url`` is where the customer pays)."""
