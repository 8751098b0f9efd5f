"""Random orders, duplicates and drops of Lemon Squeezy deliveries: the plan always converges on the newest state."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from opsmeter_billing.domain import Applied, BillingAccount, SubscriptionSnapshot, VariantMap, apply_snapshot

VARIANTS = VariantMap.parse("101=starter,102=pro,103=team,104=enterprise")
START = datetime(2026, 11, 25, tzinfo=UTC)


class WebhookDeliveries(RuleBasedStateMachine):
    """Lemon Squeezy changes the subscription; each state may be delivered never, late, or many times."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[SubscriptionSnapshot] = [
            SubscriptionSnapshot("1001", 101, "active", None, None, START, None, False)
        ]
        self.account = BillingAccount("ws_aaaaaaaaaaaa", "starter", subscription_id="1001", status="active")
        self.delivered: set[int] = set()

    def _apply(self, state: SubscriptionSnapshot) -> None:
        outcome = apply_snapshot(self.account, state, VARIANTS)
        if isinstance(outcome, Applied):
            self.account = outcome.account

    @rule(variant=st.sampled_from([101, 102, 103, 104]), status=st.sampled_from(["active", "past_due", "cancelled"]))
    def lemon_squeezy_changes_the_subscription(self, variant: int, status: str) -> None:
        last = self.states[-1]
        self.states.append(
            replace(last, variant_id=variant, status=status, updated_at=last.updated_at + timedelta(seconds=1))
        )

    @rule(data=st.data())
    def a_delivery_arrives(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.states) - 1))
        self.delivered.add(index)
        self._apply(self.states[index])

    @precondition(lambda self: len(self.states) > 1)
    @rule()
    def reconciliation_asks_lemon_squeezy(self) -> None:
        self.delivered.add(len(self.states) - 1)
        self._apply(self.states[-1])

    @invariant()
    def the_plan_is_the_newest_delivered_state(self) -> None:
        if not self.delivered:
            return
        newest = self.states[max(self.delivered)]
        assert self.account.updated_at == newest.updated_at
        assert self.account.plan == VARIANTS.plan_of(newest.variant_id)
        assert self.account.status == newest.status

    def teardown(self) -> None:
        self.reconciliation_asks_lemon_squeezy()
        assert self.account.plan == VARIANTS.plan_of(self.states[-1].variant_id)


TestWebhookDeliveries = WebhookDeliveries.TestCase
TestWebhookDeliveries.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
