import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from opsmeter_billing.domain import (
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
    limits_for,
    needs_reconciliation,
    parse_subscription,
    proven_claim,
    route,
    signature_matches,
    verification_due,
)
from opsmeter_runtime.lemonsqueezy_double import VARIANTS, LemonSqueezyDouble

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
VARIANT_MAP = VariantMap.parse(VARIANTS)
WS = "ws_aaaaaaaaaaaa"


def snapshot(variant_id: int = 102, at: datetime = T0, **changes: object) -> SubscriptionSnapshot:
    base = SubscriptionSnapshot("1001", variant_id, "active", T0 + timedelta(days=30), None, at, "https://p", False)
    return replace(base, **changes)  # type: ignore[arg-type]


def linked(**changes: object) -> BillingAccount:
    return replace(BillingAccount(WS, "starter", subscription_id="1001", variant_id=101, status="active"), **changes)  # type: ignore[arg-type]


class TestPlanLimits:
    def test_plan_defaults_follow_the_spec(self) -> None:
        assert limits_for("free", None, None).rate_limit_per_minute == 120
        assert limits_for("starter", None, None).monthly_request_quota == 100_000
        assert limits_for("team", None, None).rate_limit_per_minute == 3000

    def test_enterprise_without_a_policy_keeps_the_highest_published_rate_and_no_quota(self) -> None:
        limits = limits_for("enterprise", None, None)
        assert (limits.rate_limit_per_minute, limits.monthly_request_quota) == (3000, None)

    def test_workspace_policy_overrides_the_plan(self) -> None:
        limits = limits_for("enterprise", 50_000, 123)
        assert (limits.rate_limit_per_minute, limits.monthly_request_quota) == (50_000, 123)


class TestVariantMap:
    def test_parses_the_configured_mapping_both_ways(self) -> None:
        assert VARIANT_MAP.plan_of(102) == "pro"
        assert VARIANT_MAP.variant_of("team") == 103
        assert VARIANT_MAP.plan_of(999) is None
        assert not VariantMap.parse("")

    @pytest.mark.parametrize("text", ["101", "x=pro", "101=platinum", "101:pro"])
    def test_refuses_what_it_cannot_read(self, text: str) -> None:
        with pytest.raises(ValueError, match="VARIANT_ID=PLAN"):
            VariantMap.parse(text)


class TestSignature:
    def test_hex_hmac_sha256_of_the_raw_body(self) -> None:
        body = b'{"meta":{}}'
        good = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert signature_matches("s3cret", body, good)
        assert signature_matches("s3cret", body, good.upper())
        assert not signature_matches("s3cret", body + b" ", good)
        assert not signature_matches("other", body, good)
        assert not signature_matches("s3cret", body, None)
        assert not signature_matches("", body, good)
        assert not signature_matches("s3cret", body, "é" * 64)

    def test_a_delivery_is_identified_by_its_body(self) -> None:
        assert delivery_id(b"a") == delivery_id(b"a") != delivery_id(b"b")


class TestParseSubscription:
    def test_reads_the_documented_subscription_object(self) -> None:
        with LemonSqueezyDouble() as ls:
            sub = ls.create_subscription(103)
            data = ls.resource(sub)
        parsed = parse_subscription(data, {"custom_data": {"workspace_id": WS}, "test_mode": True})
        assert (parsed.subscription_id, parsed.variant_id, parsed.status) == (sub, 103, "active")
        assert parsed.updated_at.tzinfo is not None
        assert parsed.renews_at is not None
        assert parsed.portal_url is not None
        assert parsed.claimed_workspace_id == WS
        assert parsed.test_mode

    def test_a_custom_claim_is_read_only_from_strings(self) -> None:
        proof = checkout_claim(SECRET, WS)
        assert custom_claim({"custom_data": {"workspace_id": WS, "workspace_claim": proof}}) == (WS, proof)
        assert custom_claim({"custom_data": {"workspace_id": 7, "workspace_claim": ["x"]}}) == (None, None)
        assert custom_claim({"custom_data": "ws"}) == custom_claim(None) == (None, None)
        assert proven_claim(SECRET, WS, proof) == WS
        assert proven_claim(SECRET, WS, checkout_claim("another secret", WS)) is None

    def test_refuses_other_objects_and_missing_fields(self) -> None:
        with pytest.raises(InvalidSnapshot):
            parse_subscription({"type": "subscription-invoices", "id": "1", "attributes": {}})
        with pytest.raises(InvalidSnapshot):
            parse_subscription({"type": "subscriptions", "id": "1", "attributes": {"variant_id": 1, "status": "x"}})


class TestApplySnapshot:
    def test_a_newer_state_applies_and_confirms_the_pending_change(self) -> None:
        account = linked(updated_at=T0, pending=PendingChange("pro", 102, T0))
        outcome = apply_snapshot(account, snapshot(102, T0 + timedelta(seconds=1)), VARIANT_MAP)
        assert isinstance(outcome, Applied)
        assert (outcome.account.plan, outcome.account.pending) == ("pro", None)

    def test_an_older_or_equal_state_is_ignored(self) -> None:
        account = linked(updated_at=T0)
        assert apply_snapshot(account, snapshot(at=T0), VARIANT_MAP) == Ignored("stale")
        assert apply_snapshot(account, snapshot(at=T0 - timedelta(seconds=1)), VARIANT_MAP) == Ignored("stale")

    def test_an_unknown_variant_changes_nothing(self) -> None:
        assert apply_snapshot(linked(), snapshot(999, T0), VARIANT_MAP) == UnknownVariant(999)

    def test_test_mode_never_touches_a_live_account(self) -> None:
        assert apply_snapshot(linked(), snapshot(test_mode=True), VARIANT_MAP) == Ignored("test_mode_mismatch")

    def test_an_expired_subscription_falls_back_to_free(self) -> None:
        outcome = apply_snapshot(linked(), snapshot(103, status="expired"), VARIANT_MAP)
        assert isinstance(outcome, Applied)
        assert outcome.account.plan == "free"

    def test_another_subscription_waits_until_the_current_one_ended(self) -> None:
        other = snapshot(subscription_id="2002")
        assert apply_snapshot(linked(), other, VARIANT_MAP) == Ignored("another_subscription_active")
        outcome = apply_snapshot(linked(status="expired"), other, VARIANT_MAP)
        assert isinstance(outcome, Applied)
        assert outcome.account.subscription_id == "2002"


SECRET = "whsec"


class TestRoute:
    def test_the_stored_mapping_wins_and_custom_data_only_claims_new_subscriptions(self) -> None:
        proof = checkout_claim(SECRET, WS)
        assert route(WS, snapshot(), SECRET) == Owned(WS)
        assert route(WS, snapshot(claimed_workspace_id=WS), SECRET) == Owned(WS)
        assert route(None, snapshot(claimed_workspace_id=WS, claim_proof=proof), SECRET) == Claim(WS)
        other = "ws_bbbbbbbbbbbb"
        assert route(WS, snapshot(claimed_workspace_id=other), SECRET) == Reassignment(WS, other)

    def test_a_claim_without_billings_proof_is_anyones_and_routes_nowhere(self) -> None:
        """Anyone can open a Lemon Squeezy checkout with custom data naming any workspace."""
        forged = snapshot(claimed_workspace_id=WS)
        assert route(None, forged, SECRET) == Unroutable("unproven_claim")
        for proof in (checkout_claim("another secret", WS), checkout_claim(SECRET, "ws_bbbbbbbbbbbb"), "00" * 32):
            assert route(None, replace(forged, claim_proof=proof), SECRET) == Unroutable("unproven_claim")
        assert route(None, replace(forged, claim_proof=checkout_claim(SECRET, WS)), None) == Unroutable(
            "unproven_claim"
        )

    def test_while_the_secret_is_rotated_claims_and_signatures_under_either_are_accepted(self) -> None:
        rotated = ("whsec-new", SECRET)  # the current secret, then the previous one
        old_checkout = snapshot(claimed_workspace_id=WS, claim_proof=checkout_claim(SECRET, WS))
        assert route(None, old_checkout, rotated) == Claim(WS)
        assert route(None, old_checkout, "whsec-new") == Unroutable("unproven_claim")  # once the old one is removed
        body = b'{"meta":{}}'
        for secret in rotated:
            signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert signature_matches(rotated, body, signature)
        assert not signature_matches(rotated, body, hmac.new(b"leaked", body, hashlib.sha256).hexdigest())
        assert not signature_matches((), body, hmac.new(b"", body, hashlib.sha256).hexdigest())

    def test_the_proof_is_never_a_valid_body_signature(self) -> None:
        body = WS.encode()
        assert not signature_matches(SECRET, body, checkout_claim(SECRET, WS))

    def test_unroutable_deliveries(self) -> None:
        assert route(None, snapshot(), SECRET) == Unroutable("no_workspace")
        assert route(None, snapshot(claimed_workspace_id="../etc"), SECRET) == Unroutable("no_workspace")
        test_claim = snapshot(claimed_workspace_id=WS, claim_proof=checkout_claim(SECRET, WS), test_mode=True)
        assert route(None, test_claim, SECRET) == Unroutable("test_mode_new_subscription")


class TestReconciliation:
    def test_polls_pending_changes_fresh_links_and_overdue_renewals(self) -> None:
        hour = timedelta(hours=1)
        assert needs_reconciliation(linked(pending=PendingChange("pro", 102, T0)), T0, hour)
        assert needs_reconciliation(linked(needs_poll=True), T0, hour)
        assert needs_reconciliation(linked(renews_at=T0 - 2 * hour), T0, hour)
        assert not needs_reconciliation(linked(renews_at=T0 + hour), T0, hour)
        assert not needs_reconciliation(BillingAccount(WS, "free", needs_poll=True), T0, hour)

    def test_an_overdue_renewal_is_polled_until_lemon_squeezy_was_asked_after_it(self) -> None:
        hour = timedelta(hours=1)
        overdue = linked(renews_at=T0 - 2 * hour)
        assert needs_reconciliation(replace(overdue, verified_at=T0 - 3 * hour), T0, hour)
        assert not needs_reconciliation(replace(overdue, verified_at=T0 - hour), T0, hour)

    def test_every_linked_subscription_is_verified_once_its_interval_passed(self) -> None:
        checked_before = T0 - timedelta(hours=1)
        assert verification_due(linked(), checked_before)
        assert verification_due(linked(verified_at=checked_before - timedelta(seconds=1)), checked_before)
        assert not verification_due(linked(verified_at=checked_before + timedelta(minutes=5)), checked_before)
        assert not verification_due(BillingAccount(WS, "free"), checked_before)

    def test_an_unconfirmed_change_stops_pending_after_the_timeout(self) -> None:
        account = linked(pending=PendingChange("pro", 102, T0))
        assert expire_pending(account, T0 + timedelta(hours=1), timedelta(days=1)).pending is not None
        assert expire_pending(account, T0 + timedelta(days=1), timedelta(days=1)).pending is None
