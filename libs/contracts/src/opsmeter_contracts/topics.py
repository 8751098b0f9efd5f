"""Every Kafka topic name, in one place. Topics are keyed by workspace id."""

from enum import StrEnum


class Topics(StrEnum):
    TELEMETRY = "telemetry.llm-requests"
    WORKSPACES = "workspaces.events"
    POLICY_DECISIONS = "policy.decisions"
    BILLING_SUBSCRIPTIONS = "billing.subscriptions"
    BILLING_WEBHOOKS = "billing.webhooks"
    POLICY_SETTINGS = "policy.settings"
    ALERTING_EVENTS = "alerting.events"

    @property
    def dead_letter(self) -> str:
        return dead_letter_topic(self.value)


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic that keeps the poison messages of ``topic``."""
    return f"{topic}.dlq"


ALL_TOPICS: tuple[str, ...] = tuple(t.value for t in Topics) + tuple(t.dead_letter for t in Topics)

COMPACTED_TOPICS: tuple[str, ...] = (Topics.POLICY_SETTINGS.value,)
"""Topics that keep the last record per key (current state by workspace), created with cleanup.policy=compact."""
