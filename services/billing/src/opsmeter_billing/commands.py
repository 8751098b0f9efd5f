"""Billing's use cases: receive and apply Lemon Squeezy deliveries, request plan changes, reconcile, link.

The rules live in ``domain``; this module reads state, asks the domain, writes state, and announces
what changed. Every applied change goes through :meth:`Billing.apply_snapshot` (webhook or
reconciliation alike), so the ``updated_at`` rule is enforced in one place. State changes run one at
a time per process, so the plan projection is written in the order the changes were applied.
"""

import asyncio
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from opsmeter_billing.adapters import (
    AccountStore,
    IdempotencyStore,
    LemonSqueezyApi,
    LemonSqueezyError,
    LemonSqueezyRejected,
    StoredReply,
)
from opsmeter_billing.domain import (
    CHANGEABLE_STATUSES,
    ENDED_STATUSES,
    Applied,
    BillingAccount,
    Claim,
    Ignored,
    InvalidSnapshot,
    Owned,
    PendingChange,
    Reassignment,
    SubscriptionSnapshot,
    UnknownVariant,
    Unroutable,
    VariantMap,
    apply_snapshot,
    checkout_claim,
    custom_claim,
    delivery_id,
    expire_pending,
    needs_reconciliation,
    parse_subscription,
    proven_claim,
    route,
    signature_matches,
    verification_due,
)
from opsmeter_billing.errors import (
    AlreadyOnPlan,
    BillingNotConfigured,
    ChangeNeedsPortal,
    IdempotencyKeyReused,
    InvalidRequest,
    InvalidSignature,
    NoSubscription,
    NotFound,
    PlanNotAvailable,
    ProviderRejected,
    ProviderUnavailable,
    ReconciliationRunning,
    RequestInProgress,
    SubscriptionExists,
    SubscriptionLinkedElsewhere,
    SubscriptionNotActive,
    TransientError,
)
from opsmeter_contracts import Topics
from opsmeter_contracts.billing import (
    UNROUTED_WORKSPACE_ID,
    BillingAlertRaised,
    BillingAlertRaisedPayload,
    LemonSqueezyWebhookReceived,
    LemonSqueezyWebhookReceivedPayload,
    PlanChanged,
    PlanChangedPayload,
    PlanChangeRequested,
    PlanChangeRequestedPayload,
)
from opsmeter_contracts.envelope import EventEnvelope
from opsmeter_contracts.events import Plan
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.errors import Unavailable
from opsmeter_runtime.kafka import EventPublisher, PublishError
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.projections import PlanProjection, PlanRecord

log = get_logger(__name__)

EVENT_NAMESPACE = uuid.UUID("6f1c8f1e-3b7a-4d52-9a43-0c5b2f7e9d10")
"""Ids of derived events are uuid5 of what they describe, so a replayed effect announces nothing new."""

Source = Literal["webhook", "reconciliation", "operator_link", "operator"]
AlertKind = Literal["unknown_variant", "subscription_reassignment_rejected"]
Scope = Literal["due", "all"]
"""``due``: pending changes, fresh links, overdue renewals, then the least recently verified subscriptions whose
verify interval passed (the periodic run). ``all``: the same, then every linked subscription, oldest check first."""


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0
    applied: int = 0
    failed: int = 0
    remaining: int = 0
    """Linked subscriptions still not read from Lemon Squeezy within the verify interval after the run."""


class Pacer:
    """A token bucket for reconciliation's Lemon Squeezy calls: ``burst`` at once, then ``per_minute`` a minute."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.per_minute / 60)
        self._at = now
        if self._tokens < 1:
            delay = (1 - self._tokens) * 60 / self.per_minute
            await asyncio.sleep(delay)
            self._tokens, self._at = 1.0, now + delay
        self._tokens -= 1


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None


@dataclass(frozen=True)
class Checkout:
    workspace_id: str
    plan: Plan
    url: str


@dataclass
class Billing:
    accounts: AccountStore
    idempotency: IdempotencyStore
    plans: PlanProjection
    publisher: EventPublisher
    variants: VariantMap
    lemonsqueezy: LemonSqueezyApi | None
    webhook_secret: str | None
    store_id: str | None = None
    previous_webhook_secret: str | None = None
    """During a rotation of the signing secret: the old one, accepted for deliveries and checkout claims."""
    pending_timeout: timedelta = timedelta(days=1)
    stale_renewal: timedelta = timedelta(hours=1)
    verify_every: timedelta = timedelta(hours=1)
    """Every linked subscription is read from Lemon Squeezy about this often, so a dropped webhook heals (ADR 61)."""
    reconcile_batch: int = 300
    """Lemon Squeezy calls per reconciliation run at most (periodic or asked for)."""
    pacer: Pacer = field(default_factory=lambda: Pacer(120, 60))
    lease_ttl: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        self._lock = asyncio.Lock()

    # --- accounts ------------------------------------------------------------------------------------

    async def open_account(self, workspace_id: str, plan: Plan, rate_limit: int | None, quota: int | None) -> None:
        """A new workspace starts on the plan it was created with; a replayed creation changes nothing."""
        async with self._lock:
            fresh = BillingAccount(workspace_id, plan, rate_limit, quota)
            await self.accounts.update(workspace_id, lambda current: (None if current else fresh, None))
            await self._sync_projection(workspace_id, "operator_link")

    async def account(self, workspace_id: str) -> BillingAccount:
        found = await self.accounts.get(workspace_id)
        if found is not None:
            return found
        projected = await self.plans.get(workspace_id)
        if projected is None:
            raise NotFound("no billing account for this workspace yet")
        adopted = BillingAccount(workspace_id, projected.plan, projected_plan=projected.plan)
        await self.accounts.update(workspace_id, lambda current: (None if current else adopted, None))
        return await self.accounts.get(workspace_id) or adopted

    async def set_plan_by_operator(
        self, workspace_id: str, plan: Plan, rate_limit: int | None, quota: int | None
    ) -> None:
        """An operator's plan (``workspace.plan_set``) and limits; Lemon Squeezy's next confirmed state wins again."""
        async with self._lock:

            def set_plan(current: BillingAccount | None) -> tuple[BillingAccount | None, None]:
                base = current or BillingAccount(workspace_id, plan)
                return replace(base, plan=plan, rate_limit_override=rate_limit, quota_override=quota), None

            await self.accounts.update(workspace_id, set_plan)
            await self._sync_projection(workspace_id, "operator", limits_changed=True)

    async def _sync_projection(self, workspace_id: str, source: Source, *, limits_changed: bool = False) -> None:
        """Write the plan projection (and announce the change) until it matches the account's plan."""
        account = await self.accounts.get(workspace_id)
        if account is None or (account.projected_plan == account.plan and not limits_changed):
            return
        limits = account.limits
        await self.plans.save(
            workspace_id, PlanRecord(account.plan, limits.rate_limit_per_minute, limits.monthly_request_quota)
        )
        if account.projected_plan is not None and account.projected_plan != account.plan:
            await self._publish(
                Topics.BILLING_SUBSCRIPTIONS,
                PlanChanged(
                    event_id=uuid.uuid5(
                        EVENT_NAMESPACE,
                        f"plan:{workspace_id}:{account.projected_plan}:{account.plan}:{_iso(account.updated_at)}",
                    ),
                    occurred_at=account.updated_at or _now(),
                    ingested_at=_now(),
                    workspace_id=workspace_id,
                    payload=PlanChangedPayload(
                        from_plan=account.projected_plan,
                        to_plan=account.plan,
                        rate_limit_per_minute=limits.rate_limit_per_minute,
                        monthly_request_quota=limits.monthly_request_quota,
                        subscription_id=account.subscription_id,
                        source=source,
                        lemonsqueezy_updated_at=account.updated_at,
                    ),
                ),
            )
            log.info("plan_changed", from_plan=account.projected_plan, to_plan=account.plan, source=source)

        def mark(current: BillingAccount | None) -> tuple[BillingAccount | None, None]:
            if current is None or current.plan != account.plan:
                return None, None
            return replace(current, projected_plan=account.plan), None

        await self.accounts.update(workspace_id, mark)

    async def _publish(self, topic: str, event: EventEnvelope[Any]) -> None:
        try:
            await self.publisher.publish(topic, event)
        except PublishError as exc:
            raise TransientError(str(exc)) from exc

    # --- Lemon Squeezy deliveries --------------------------------------------------------------------

    @property
    def _secrets(self) -> tuple[str, ...]:
        """What a delivery's signature and a checkout's claim may be made with: the current secret, and the previous
        one while it is being rotated (a claim is only ever made with the current one)."""
        return tuple(k for k in (self.webhook_secret, self.previous_webhook_secret) if k)

    async def receive_delivery(self, body: bytes, signature: str | None) -> None:
        """Verify, then make the delivery durable on ``billing.webhooks`` before Lemon Squeezy gets its 200."""
        if not self.webhook_secret:
            raise BillingNotConfigured(
                "Lemon Squeezy webhooks are not configured here: set OPSMETER_LEMONSQUEEZY_WEBHOOK_SECRET"
            )
        if not signature_matches(self._secrets, body, signature):
            raise InvalidSignature("X-Signature is not the HMAC-SHA256 of this body under the signing secret")
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body is not JSON") from None
        meta = document.get("meta") if isinstance(document, dict) else None
        if not isinstance(meta, dict):
            raise InvalidRequest("the body has no meta object")
        digest = delivery_id(body)
        if await self.accounts.delivery_seen(digest):
            log.info("lemonsqueezy_delivery_duplicate", delivery=digest)
            return
        now = _now()
        event = LemonSqueezyWebhookReceived(
            event_id=uuid.uuid5(EVENT_NAMESPACE, f"delivery:{digest}"),
            occurred_at=now,
            ingested_at=now,
            workspace_id=await self._routing_key(document, meta),
            payload=LemonSqueezyWebhookReceivedPayload(
                event_name=str(meta.get("event_name", ""))[:128],
                body=body.decode("utf-8", "replace"),
                body_sha256=digest,
                test_mode=bool(meta.get("test_mode", False)),
            ),
        )
        try:
            await self.publisher.publish(Topics.BILLING_WEBHOOKS, event)
        except PublishError as exc:
            raise Unavailable(f"delivery not stored: {exc}", headers={"Retry-After": "5"}) from None
        log.info("lemonsqueezy_delivery_stored", delivery=digest, event_name=event.payload.event_name)

    async def _routing_key(self, document: dict[str, Any], meta: dict[str, Any]) -> str:
        """The partition key of a stored delivery: the subscription's owner, else its proven claim."""
        data = document.get("data")
        if isinstance(data, dict) and data.get("type") == "subscriptions" and data.get("id") is not None:
            owner = await self.accounts.owner_of(str(data["id"]))
            if owner is not None:
                return owner
        return proven_claim(self._secrets, *custom_claim(meta)) or UNROUTED_WORKSPACE_ID

    async def apply_delivery(self, event: LemonSqueezyWebhookReceived) -> None:
        """Apply a stored delivery once (by body hash); ``subscription_*`` on a subscription object only."""
        payload = event.payload
        if await self.accounts.delivery_seen(payload.body_sha256):
            log.info("lemonsqueezy_delivery_duplicate", delivery=payload.body_sha256)
            return
        document = orjson.loads(payload.body)
        data = document.get("data") if isinstance(document, dict) else None
        if not payload.event_name.startswith("subscription_") or not isinstance(data, dict):
            log.info("lemonsqueezy_delivery_no_effect", event_name=payload.event_name)
        elif data.get("type") != "subscriptions":
            log.info("lemonsqueezy_delivery_no_effect", event_name=payload.event_name, data_type=data.get("type"))
        else:
            try:
                snapshot = parse_subscription(data, document.get("meta"))
            except InvalidSnapshot as exc:
                log.warning("lemonsqueezy_delivery_unusable", event_name=payload.event_name, error=str(exc))
            else:
                outcome = await self.apply_snapshot(snapshot, "webhook")
                log.info("lemonsqueezy_delivery_applied", event_name=payload.event_name, outcome=outcome)
        await self.accounts.mark_delivery(payload.body_sha256)

    async def apply_snapshot(self, snapshot: SubscriptionSnapshot, source: Source) -> str:
        """Route the snapshot to its workspace and apply it if newer; the outcome, for logs and reports."""
        async with self._lock:
            workspace_id = await self._route(snapshot)
            if workspace_id is None:
                return "not_routed"

            def decide(current: BillingAccount | None) -> tuple[BillingAccount | None, object]:
                if current is None:
                    return None, Ignored("stale")
                outcome = apply_snapshot(current, snapshot, self.variants)
                return (outcome.account if isinstance(outcome, Applied) else None), outcome

            outcome = await self.accounts.update(workspace_id, decide)
            if isinstance(outcome, UnknownVariant):
                log.error("lemonsqueezy_unknown_variant", variant_id=outcome.variant_id, workspace_id=workspace_id)
                await self._alert(
                    workspace_id,
                    snapshot,
                    "unknown_variant",
                    f"variant {outcome.variant_id} maps to no plan (OPSMETER_LEMONSQUEEZY_VARIANTS); nothing changed",
                )
                return "unknown_variant"
            if isinstance(outcome, Ignored):
                log.info("lemonsqueezy_snapshot_ignored", reason=outcome.reason, workspace_id=workspace_id)
                return f"ignored_{outcome.reason}"
            await self._sync_projection(workspace_id, source)
            return "applied"

    async def _route(self, snapshot: SubscriptionSnapshot) -> str | None:
        routed = route(await self.accounts.owner_of(snapshot.subscription_id), snapshot, self._secrets)
        if isinstance(routed, Claim):
            try:
                await self.account(routed.workspace_id)
            except NotFound:
                log.warning("lemonsqueezy_claim_unknown_workspace", claimed=routed.workspace_id)
                return None
            owner = await self.accounts.claim(snapshot.subscription_id, routed.workspace_id)
            routed = Owned(owner) if owner == routed.workspace_id else Reassignment(owner, routed.workspace_id)
        if isinstance(routed, Reassignment):
            log.warning(
                "security_event",
                kind="subscription_reassignment_rejected",
                subscription_id=snapshot.subscription_id,
                owner=routed.owner,
                claimed=routed.claimed,
            )
            await self._alert(
                routed.owner,
                snapshot,
                "subscription_reassignment_rejected",
                f"a delivery tried to move subscription {snapshot.subscription_id} to {routed.claimed}; ignored",
            )
            return None
        if isinstance(routed, Unroutable):
            if routed.reason == "unproven_claim":
                log.warning(
                    "security_event",
                    kind="subscription_claim_unproven",
                    subscription_id=snapshot.subscription_id,
                    claimed=snapshot.claimed_workspace_id,
                )
            log.warning("lemonsqueezy_snapshot_unroutable", reason=routed.reason, subscription=snapshot.subscription_id)
            return None
        return routed.workspace_id

    async def _alert(self, workspace_id: str, snapshot: SubscriptionSnapshot, kind: AlertKind, detail: str) -> None:
        await self._publish(
            Topics.BILLING_SUBSCRIPTIONS,
            BillingAlertRaised(
                event_id=uuid.uuid5(
                    EVENT_NAMESPACE, f"alert:{kind}:{snapshot.subscription_id}:{_iso(snapshot.updated_at)}"
                ),
                occurred_at=_now(),
                ingested_at=_now(),
                workspace_id=workspace_id,
                payload=BillingAlertRaisedPayload(
                    kind=kind,
                    subscription_id=snapshot.subscription_id[:64],
                    detail=detail[:512],
                ),
            ),
        )

    # --- plan changes --------------------------------------------------------------------------------

    def _api(self) -> LemonSqueezyApi:
        if self.lemonsqueezy is None or not self.variants:
            raise BillingNotConfigured(
                "plan changes and checkouts need OPSMETER_LEMONSQUEEZY_API_KEY and OPSMETER_LEMONSQUEEZY_VARIANTS"
            )
        return self.lemonsqueezy

    async def request_plan_change(self, principal: Principal, plan: Plan, idempotency_key: str) -> StoredReply:
        """Ask Lemon Squeezy for the plan's variant; the plan itself changes only when its webhook confirms."""
        api = self._api()
        workspace_id = principal.workspace_id
        prior = await self.idempotency.begin(workspace_id, idempotency_key, plan)
        if isinstance(prior, StoredReply):
            return prior
        if prior == "key_reused":
            raise IdempotencyKeyReused("this Idempotency-Key was used for another plan")
        if prior is not None:
            raise RequestInProgress(
                "a request with this Idempotency-Key is still running", headers={"Retry-After": "1"}
            )
        try:
            reply = await self._request_plan_change(api, principal, plan)
        except BaseException:
            await self.idempotency.abandon(workspace_id, idempotency_key)
            raise
        await self.idempotency.finish(workspace_id, idempotency_key, plan, reply)
        return reply

    async def _request_plan_change(self, api: LemonSqueezyApi, principal: Principal, plan: Plan) -> StoredReply:
        workspace_id = principal.workspace_id
        variant_id = self.variants.variant_of(plan)
        if variant_id is None:
            raise PlanNotAvailable(f"no Lemon Squeezy variant is configured for the {plan} plan")
        account = await self.account(workspace_id)
        if account.subscription_id is None:
            raise NoSubscription("this workspace has no Lemon Squeezy subscription to change")
        if account.status not in CHANGEABLE_STATUSES:
            raise SubscriptionNotActive(f"the subscription is {account.status}; only an active one can change plan")
        if account.pending is not None and account.pending.plan == plan:
            return self._pending_reply(account, account.pending)
        if account.plan == plan and account.pending is None:
            raise AlreadyOnPlan(f"the workspace is already on the {plan} plan")
        try:
            answered = parse_subscription(await api.change_variant(account.subscription_id, variant_id))
        except LemonSqueezyRejected as exc:
            raise ProviderRejected(str(exc)) from None
        except (LemonSqueezyError, InvalidSnapshot) as exc:
            raise ProviderUnavailable(str(exc), headers={"Retry-After": "30"}) from None
        if answered.variant_id != variant_id:
            raise ChangeNeedsPortal(
                "Lemon Squeezy cannot change this subscription in-app (PayPal); change it in the customer portal",
                customerPortalUrl=answered.portal_url or account.portal_url,
            )
        pending = PendingChange(plan, variant_id, _now())
        await self._publish(
            Topics.BILLING_SUBSCRIPTIONS,
            PlanChangeRequested(
                event_id=uuid.uuid4(),
                occurred_at=pending.requested_at,
                ingested_at=pending.requested_at,
                workspace_id=workspace_id,
                payload=PlanChangeRequestedPayload(
                    subscription_id=account.subscription_id,
                    from_plan=account.plan,
                    to_plan=plan,
                    variant_id=variant_id,
                    requested_by=principal.credential_id,
                ),
            ),
        )
        async with self._lock:
            await self.accounts.update(
                workspace_id, lambda current: (replace(current, pending=pending) if current else None, None)
            )
        log.info("plan_change_requested", to_plan=plan, variant_id=variant_id)
        return self._pending_reply(account, pending)

    @staticmethod
    def _pending_reply(account: BillingAccount, pending: PendingChange) -> StoredReply:
        return StoredReply(
            202,
            {
                "status": "pending_webhook",
                "workspaceId": account.workspace_id,
                "subscriptionId": account.subscription_id,
                "currentPlan": account.plan,
                "requestedPlan": pending.plan,
                "requestedAt": _iso(pending.requested_at),
                "message": "Lemon Squeezy is changing the subscription; the plan changes when its webhook confirms.",
            },
        )

    async def create_checkout(self, workspace_id: str, plan: Plan, redirect_url: str | None) -> Checkout:
        """A Lemon Squeezy checkout for a workspace without a live subscription. Its custom data names the workspace
        with the proof (:func:`checkout_claim`) that lets the subscription it creates claim it (ADR 71)."""
        api = self._api()
        if self.store_id is None or not self.webhook_secret:
            raise BillingNotConfigured(
                "checkouts need OPSMETER_LEMONSQUEEZY_STORE_ID and OPSMETER_LEMONSQUEEZY_WEBHOOK_SECRET"
            )
        variant_id = self.variants.variant_of(plan)
        if variant_id is None or plan == "free":
            raise PlanNotAvailable(f"no Lemon Squeezy variant is configured for the {plan} plan")
        account = await self.account(workspace_id)
        if account.subscription_id is not None and account.status not in ENDED_STATUSES:
            raise SubscriptionExists(
                f"this workspace already has a subscription ({account.status}); change its plan instead"
            )
        custom = {"workspace_id": workspace_id, "workspace_claim": checkout_claim(self.webhook_secret, workspace_id)}
        try:
            created = await api.create_checkout(self.store_id, variant_id, custom, redirect_url)
        except LemonSqueezyRejected as exc:
            raise ProviderRejected(str(exc)) from None
        except LemonSqueezyError as exc:
            raise ProviderUnavailable(str(exc), headers={"Retry-After": "30"}) from None
        attributes = created.get("attributes")
        url = attributes.get("url") if isinstance(attributes, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ProviderUnavailable("Lemon Squeezy answered a checkout without a URL", headers={"Retry-After": "30"})
        log.info("checkout_created", plan=plan, variant_id=variant_id, checkout_id=str(created.get("id", "")))
        return Checkout(workspace_id, plan, url)

    async def portal_url(self, workspace_id: str) -> str:
        """A fresh customer-portal link (Lemon Squeezy signs it for 24 h), else the last one it sent."""
        account = await self.account(workspace_id)
        if account.subscription_id is None:
            raise NoSubscription("this workspace has no Lemon Squeezy subscription")
        if self.lemonsqueezy is not None:
            try:
                fresh = parse_subscription(await self.lemonsqueezy.get_subscription(account.subscription_id))
            except (LemonSqueezyError, InvalidSnapshot) as exc:
                log.warning("lemonsqueezy_portal_lookup_failed", error=str(exc))
            else:
                if fresh.portal_url:
                    return fresh.portal_url
        if account.portal_url is None:
            raise ProviderUnavailable("no customer-portal link is known yet", headers={"Retry-After": "30"})
        return account.portal_url

    # --- reconciliation and links --------------------------------------------------------------------

    async def reconcile(
        self, now: datetime | None = None, *, scope: Scope = "due", wait_for_lease_s: float = 0.0
    ) -> ReconcileReport:
        """Read subscriptions from Lemon Squeezy and apply them by ``updated_at``, one replica at a time.

        Raises ``ReconciliationRunning`` when another run still holds the lease after ``wait_for_lease_s``."""
        if self.lemonsqueezy is None:
            return ReconcileReport()
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_for_lease_s
        while not await self.accounts.acquire_reconciliation(token, self.lease_ttl.total_seconds()):
            if time.monotonic() >= deadline:
                raise ReconciliationRunning(
                    "another reconciliation is running; try again shortly", headers={"Retry-After": "30"}
                )
            await asyncio.sleep(0.2)
        try:
            return await self._reconcile(self.lemonsqueezy, now or _now(), scope)
        finally:
            await self.accounts.release_reconciliation(token)

    async def _reconcile(self, api: LemonSqueezyApi, now: datetime, scope: Scope) -> ReconcileReport:
        verify_before = now - self.verify_every
        checked_before = now if scope == "all" else verify_before
        batch = self.reconcile_batch
        urgent = await self.accounts.due_for_reconciliation((now - self.stale_renewal).timestamp(), batch)
        oldest = await self.accounts.least_recently_verified(checked_before.timestamp(), batch)
        report = ReconcileReport()
        for workspace_id in dict.fromkeys([*urgent, *oldest]):
            if report.checked >= batch:
                break
            account = await self.accounts.get(workspace_id)
            if account is None or account.subscription_id is None:
                continue
            if not (
                needs_reconciliation(account, now, self.stale_renewal) or verification_due(account, checked_before)
            ):
                continue
            await self.pacer.wait()
            report = replace(report, checked=report.checked + 1)
            try:
                snapshot = parse_subscription(await api.get_subscription(account.subscription_id))
                outcome = await self.apply_snapshot(snapshot, "reconciliation")
            except (LemonSqueezyRejected, InvalidSnapshot) as exc:
                # Lemon Squeezy answered: this subscription waits for its next turn, the others go on.
                log.warning("reconciliation_failed", workspace_id=workspace_id, error=str(exc))
                report = replace(report, failed=report.failed + 1)
                await self._mark_verified(workspace_id, now, clear_poll=False)
                continue
            except (LemonSqueezyError, TransientError) as exc:
                # Lemon Squeezy (after its retries) or Kafka is down: stop; the rest stay first in line.
                log.warning("reconciliation_interrupted", workspace_id=workspace_id, error=str(exc))
                report = replace(report, failed=report.failed + 1)
                break
            if outcome == "applied":
                report = replace(report, applied=report.applied + 1)
            await self._mark_verified(workspace_id, now, clear_poll=True)
        report = replace(report, remaining=await self.accounts.count_unverified(verify_before.timestamp()))
        if report.checked or report.remaining:
            log.info("reconciliation_done", scope=scope, **vars(report))
        if scope == "due" and report.checked >= batch and report.remaining:
            log.warning("verification_behind", remaining=report.remaining, batch=batch)
        return report

    async def _mark_verified(self, workspace_id: str, now: datetime, *, clear_poll: bool) -> None:
        def mark(current: BillingAccount | None) -> tuple[BillingAccount | None, None]:
            if current is None:
                return None, None
            marked = replace(current, verified_at=now, needs_poll=current.needs_poll and not clear_poll)
            return expire_pending(marked, now, self.pending_timeout), None

        async with self._lock:
            await self.accounts.update(workspace_id, mark)

    async def link_subscription(
        self, workspace_id: str, subscription_id: str, plan: Plan, *, test_mode: bool = False
    ) -> BillingAccount:
        """An operator records an existing subscription; reconciliation then asks Lemon Squeezy for its state."""
        await self.account(workspace_id)
        owner = await self.accounts.claim(subscription_id, workspace_id)
        if owner != workspace_id:
            raise SubscriptionLinkedElsewhere(f"subscription {subscription_id} belongs to another workspace")

        def link(current: BillingAccount | None) -> tuple[BillingAccount | None, None]:
            if current is None:
                return None, None
            same = current.subscription_id == subscription_id
            return (
                replace(
                    current,
                    plan=plan,
                    subscription_id=subscription_id,
                    variant_id=self.variants.variant_of(plan),
                    status=current.status if same and current.status else "active",
                    updated_at=current.updated_at if same else None,
                    test_mode=test_mode,
                    pending=None,
                    needs_poll=True,
                ),
                None,
            )

        async with self._lock:
            await self.accounts.update(workspace_id, link)
            await self._sync_projection(workspace_id, "operator_link")
        log.info("subscription_linked", workspace_id=workspace_id, subscription_id=subscription_id, plan=plan)
        return await self.account(workspace_id)
