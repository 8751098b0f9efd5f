"""Pure billing rules, no I/O: plans and their limits (SPEC §4), Lemon Squeezy variants and signatures,
and when a subscription snapshot from Lemon Squeezy applies to a workspace (SPEC §9)."""

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from opsmeter_contracts.envelope import WORKSPACE_ID_PATTERN
from opsmeter_contracts.events import Plan

PLANS: tuple[Plan, ...] = get_args(Plan)


@dataclass(frozen=True)
class PlanLimits:
    rate_limit_per_minute: int | None
    monthly_request_quota: int | None


DEFAULT_LIMITS: dict[Plan, PlanLimits] = {
    "free": PlanLimits(120, 10_000),
    "starter": PlanLimits(300, 100_000),
    "pro": PlanLimits(600, 1_000_000),
    "team": PlanLimits(3000, 10_000_000),
    "enterprise": PlanLimits(3000, None),
}
"""Enterprise's limits are its workspace policy (the overrides); until the operator sets one, it keeps the highest
published rate limit (Team's), so moving up to Enterprise never lowers the rate, and has no request quota."""


def limits_for(plan: Plan, rate_limit_override: int | None, quota_override: int | None) -> PlanLimits:
    """A workspace's limits: its own overrides (Enterprise policy) over the plan's defaults."""
    default = DEFAULT_LIMITS[plan]
    return PlanLimits(
        rate_limit_override if rate_limit_override is not None else default.rate_limit_per_minute,
        quota_override if quota_override is not None else default.monthly_request_quota,
    )


# --- Lemon Squeezy: variants, signatures, deliveries -------------------------------------------------


class VariantMap:
    """Lemon Squeezy variant ids ↔ plans, from ``"101=starter,102=pro,103=team,104=enterprise"``."""

    def __init__(self, plans_by_variant: Mapping[int, Plan]) -> None:
        self._plans = dict(plans_by_variant)
        self._variants: dict[Plan, int] = {}
        for variant_id, plan in sorted(self._plans.items()):
            self._variants.setdefault(plan, variant_id)

    @classmethod
    def parse(cls, text: str) -> "VariantMap":
        plans: dict[int, Plan] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            variant, sep, plan = item.partition("=")
            if not sep or not variant.strip().isdigit() or plan.strip() not in PLANS:
                raise ValueError(f"expected VARIANT_ID=PLAN with a plan in {list(PLANS)}, got {item!r}")
            plans[int(variant)] = plan.strip()  # type: ignore[assignment]
        return cls(plans)

    def plan_of(self, variant_id: int) -> Plan | None:
        return self._plans.get(variant_id)

    def variant_of(self, plan: Plan) -> int | None:
        """The variant a change to ``plan`` asks for (the lowest id when several map to it)."""
        return self._variants.get(plan)

    def __bool__(self) -> bool:
        return bool(self._plans)


Secrets = str | Sequence[str] | None
"""The signing secret, or the current one and the previous one while it is being rotated (both are accepted)."""


def _each(secrets: Secrets) -> list[str]:
    return [secrets] if isinstance(secrets, str) else list(secrets or ())


def _made_with_one_of(secrets: Secrets, presented: str | None, expected: Callable[[str], str]) -> bool:
    """``presented`` (hex, any case) is ``expected(secret)`` for one of ``secrets``; compared in constant time."""
    if not presented:
        return False
    given = presented.strip().lower().encode("ascii", "replace")
    return any(hmac.compare_digest(expected(k).encode(), given) for k in _each(secrets) if k)


def signature_matches(secrets: Secrets, body: bytes, presented: str | None) -> bool:
    """``X-Signature`` is the hex HMAC-SHA256 of the raw body under one of ``secrets``."""
    return _made_with_one_of(secrets, presented, lambda k: hmac.new(k.encode(), body, hashlib.sha256).hexdigest())


CLAIM_CONTEXT = b"opsmeter checkout claim\x00"


def checkout_claim(secret: str, workspace_id: str) -> str:
    """The proof billing puts beside ``workspace_id`` in a checkout's custom data: the hex HMAC-SHA256 of the
    workspace id under the webhook signing secret (with its own context, so it is never a valid body signature).
    Lemon Squeezy copies custom data into the subscription's deliveries; a claim without it is anyone's."""
    return hmac.new(secret.encode(), CLAIM_CONTEXT + workspace_id.encode(), hashlib.sha256).hexdigest()


def claim_matches(secrets: Secrets, workspace_id: str, presented: str | None) -> bool:
    """``presented`` is :func:`checkout_claim` of ``workspace_id`` under one of ``secrets``."""
    return _made_with_one_of(secrets, presented, lambda k: checkout_claim(k, workspace_id))


def delivery_id(body: bytes) -> str:
    """Lemon Squeezy sends no event id: a delivery is identified by the hash of its raw body."""
    return hashlib.sha256(body).hexdigest()


class InvalidSnapshot(ValueError):
    """A subscription document without the fields billing relies on."""


@dataclass(frozen=True)
class SubscriptionSnapshot:
    """One state of a Lemon Squeezy subscription, as a webhook or ``GET /v1/subscriptions/{id}`` tells it."""

    subscription_id: str
    variant_id: int
    status: str
    renews_at: datetime | None
    ends_at: datetime | None
    updated_at: datetime
    portal_url: str | None
    test_mode: bool
    claimed_workspace_id: str | None = None
    """``meta.custom_data.workspace_id``: trusted only for a subscription billing has never seen, with its proof."""
    claim_proof: str | None = None
    """``meta.custom_data.workspace_claim``: :func:`checkout_claim` of the claimed workspace (billing's checkout)."""


def parse_subscription(data: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> SubscriptionSnapshot:
    """A snapshot from a JSON:API ``data`` object of type ``subscriptions`` (and a webhook's ``meta``)."""
    if data.get("type") != "subscriptions":
        raise InvalidSnapshot(f"data.type is {data.get('type')!r}, not 'subscriptions'")
    attributes = data.get("attributes")
    if not isinstance(attributes, Mapping):
        raise InvalidSnapshot("data.attributes is missing")
    try:
        variant_id = int(attributes["variant_id"])
        updated_at = _time(attributes["updated_at"])
        status = str(attributes["status"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSnapshot(f"variant_id, status and updated_at are required: {exc}") from None
    if updated_at is None:
        raise InvalidSnapshot("updated_at is null")
    urls: Mapping[str, Any] = attributes["urls"] if isinstance(attributes.get("urls"), Mapping) else {}
    claimed, proof = custom_claim(meta)
    test_mode = (meta or {}).get("test_mode", attributes.get("test_mode", False))
    return SubscriptionSnapshot(
        subscription_id=str(data.get("id", "")),
        variant_id=variant_id,
        status=status,
        renews_at=_time(attributes.get("renews_at")),
        ends_at=_time(attributes.get("ends_at")),
        updated_at=updated_at,
        portal_url=urls.get("customer_portal") if isinstance(urls.get("customer_portal"), str) else None,
        test_mode=bool(test_mode),
        claimed_workspace_id=claimed,
        claim_proof=proof,
    )


def custom_claim(meta: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """A webhook's ``meta.custom_data`` ``workspace_id`` and ``workspace_claim`` (each None unless a string)."""
    custom = (meta or {}).get("custom_data")
    if not isinstance(custom, Mapping):
        return None, None
    claimed, proof = custom.get("workspace_id"), custom.get("workspace_claim")
    return claimed if isinstance(claimed, str) else None, proof if isinstance(proof, str) else None


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without offset: {value!r}")
    return parsed


# --- Workspace billing state -------------------------------------------------------------------------

ENDED_STATUSES = frozenset({"expired", "cancelled"})
CHANGEABLE_STATUSES = frozenset({"active", "on_trial", "past_due"})


@dataclass(frozen=True)
class PendingChange:
    plan: Plan
    variant_id: int
    requested_at: datetime


@dataclass(frozen=True)
class BillingAccount:
    """What billing knows of one workspace: its confirmed plan, its subscription, a change waiting for a webhook."""

    workspace_id: str
    plan: Plan
    rate_limit_override: int | None = None
    quota_override: int | None = None
    subscription_id: str | None = None
    variant_id: int | None = None
    status: str | None = None
    renews_at: datetime | None = None
    ends_at: datetime | None = None
    updated_at: datetime | None = None
    """Lemon Squeezy's ``updated_at`` of the state applied last; older snapshots never apply."""
    portal_url: str | None = None
    test_mode: bool = False
    pending: PendingChange | None = None
    projected_plan: Plan | None = None
    """The plan last written to the plan projection (and announced); differs from ``plan`` until synced."""
    needs_poll: bool = False
    """Ask Lemon Squeezy at the next reconciliation (a freshly linked subscription)."""
    verified_at: datetime | None = None
    """When reconciliation last read the subscription from Lemon Squeezy (None: never); oldest are read first."""

    @property
    def limits(self) -> PlanLimits:
        return limits_for(self.plan, self.rate_limit_override, self.quota_override)


def plan_for_status(variant_plan: Plan, status: str) -> Plan:
    """An expired subscription no longer entitles the workspace to its plan: it falls back to Free."""
    return "free" if status == "expired" else variant_plan


@dataclass(frozen=True)
class Applied:
    account: BillingAccount


@dataclass(frozen=True)
class Ignored:
    reason: Literal["stale", "test_mode_mismatch", "another_subscription_active"]


@dataclass(frozen=True)
class UnknownVariant:
    variant_id: int


SnapshotOutcome = Applied | Ignored | UnknownVariant


def apply_snapshot(account: BillingAccount, snapshot: SubscriptionSnapshot, variants: VariantMap) -> SnapshotOutcome:
    """The account after ``snapshot`` if it applies: only a newer ``updated_at`` wins, so any order converges."""
    if snapshot.test_mode != account.test_mode:
        return Ignored("test_mode_mismatch")
    if (
        account.subscription_id is not None
        and account.subscription_id != snapshot.subscription_id
        and account.status not in ENDED_STATUSES
    ):
        return Ignored("another_subscription_active")
    same_subscription = account.subscription_id == snapshot.subscription_id
    if same_subscription and account.updated_at is not None and snapshot.updated_at <= account.updated_at:
        return Ignored("stale")
    variant_plan = variants.plan_of(snapshot.variant_id)
    if variant_plan is None:
        return UnknownVariant(snapshot.variant_id)
    pending = account.pending
    if pending is not None and (pending.variant_id == snapshot.variant_id or not same_subscription):
        pending = None
    return Applied(
        replace(
            account,
            plan=plan_for_status(variant_plan, snapshot.status),
            subscription_id=snapshot.subscription_id,
            variant_id=snapshot.variant_id,
            status=snapshot.status,
            renews_at=snapshot.renews_at,
            ends_at=snapshot.ends_at,
            updated_at=snapshot.updated_at,
            portal_url=snapshot.portal_url or account.portal_url,
            pending=pending,
            needs_poll=False,
        )
    )


def expire_pending(account: BillingAccount, now: datetime, timeout: timedelta) -> BillingAccount:
    """A change Lemon Squeezy never confirmed within ``timeout`` stops showing as pending."""
    if account.pending is not None and now - account.pending.requested_at >= timeout:
        return replace(account, pending=None)
    return account


# --- Routing a delivery to a workspace ---------------------------------------------------------------


@dataclass(frozen=True)
class Owned:
    workspace_id: str


@dataclass(frozen=True)
class Claim:
    """A subscription billing has never seen, claimed by ``meta.custom_data.workspace_id`` with its proof."""

    workspace_id: str


@dataclass(frozen=True)
class Reassignment:
    """A delivery names another workspace for a subscription that already belongs to one: a security event."""

    owner: str
    claimed: str


@dataclass(frozen=True)
class Unroutable:
    reason: Literal["no_workspace", "unproven_claim", "test_mode_new_subscription"]


Route = Owned | Claim | Reassignment | Unroutable


def route(stored_owner: str | None, snapshot: SubscriptionSnapshot, secret: Secrets) -> Route:
    """The stored mapping first; ``custom_data.workspace_id`` only for a new live subscription, and only with the
    proof billing's checkout put beside it (anyone can open a Lemon Squeezy checkout with any custom data)."""
    claimed = snapshot.claimed_workspace_id
    if stored_owner is not None:
        if claimed is not None and claimed != stored_owner:
            return Reassignment(stored_owner, claimed)
        return Owned(stored_owner)
    if claimed is None or not _is_workspace_id(claimed):
        return Unroutable("no_workspace")
    if not claim_matches(secret, claimed, snapshot.claim_proof):
        return Unroutable("unproven_claim")
    if snapshot.test_mode:
        return Unroutable("test_mode_new_subscription")
    return Claim(claimed)


def proven_claim(secret: Secrets, claimed: str | None, proof: str | None) -> str | None:
    """``claimed`` when it is a workspace id and ``proof`` is billing's :func:`checkout_claim` of it, else None."""
    if claimed is None or not _is_workspace_id(claimed) or not claim_matches(secret, claimed, proof):
        return None
    return claimed


def _is_workspace_id(value: str) -> bool:
    return re.fullmatch(WORKSPACE_ID_PATTERN, value) is not None


def needs_reconciliation(account: BillingAccount, now: datetime, stale_after: timedelta) -> bool:
    """Poll Lemon Squeezy now for a pending change, a fresh link, or a renewal date that passed ``stale_after``
    ago without a word from Lemon Squeezy since (once: after that, periodic verification covers it)."""
    if account.subscription_id is None:
        return False
    return account.pending is not None or account.needs_poll or renewal_unchecked(account, now - stale_after)


def renewal_unchecked(account: BillingAccount, renewed_before: datetime) -> bool:
    """The renewal date is before ``renewed_before`` and Lemon Squeezy was not asked since that date."""
    renews_at = account.renews_at
    if renews_at is None or renews_at > renewed_before:
        return False
    return account.verified_at is None or account.verified_at < renews_at


def verification_due(account: BillingAccount, checked_before: datetime) -> bool:
    """A linked subscription not read from Lemon Squeezy since ``checked_before`` (now − the verify interval)."""
    if account.subscription_id is None:
        return False
    return account.verified_at is None or account.verified_at <= checked_before
