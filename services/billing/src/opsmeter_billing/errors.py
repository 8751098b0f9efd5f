"""Errors of this service carry their outcome; the shared ones live in ``opsmeter_runtime.errors``."""

from opsmeter_runtime.errors import (
    Forbidden,
    InvalidRequest,
    NotFound,
    OpsmeterError,
    PoisonMessage,
    TransientError,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "AlreadyOnPlan",
    "BillingNotConfigured",
    "ChangeNeedsPortal",
    "Forbidden",
    "IdempotencyKeyReused",
    "InvalidRequest",
    "InvalidSignature",
    "NoSubscription",
    "NotFound",
    "PlanNotAvailable",
    "PoisonMessage",
    "ProviderRejected",
    "ProviderUnavailable",
    "ReconciliationRunning",
    "RequestInProgress",
    "SubscriptionExists",
    "SubscriptionLinkedElsewhere",
    "SubscriptionNotActive",
    "TransientError",
    "Unauthorized",
]


class BillingNotConfigured(Unavailable):
    reason = "billing_not_configured"


class InvalidSignature(Unauthorized):
    reason = "invalid_signature"


class NoSubscription(OpsmeterError):
    status_code = 409
    reason = "no_subscription"


class SubscriptionNotActive(OpsmeterError):
    status_code = 409
    reason = "subscription_not_active"


class AlreadyOnPlan(OpsmeterError):
    status_code = 409
    reason = "already_on_plan"


class ChangeNeedsPortal(OpsmeterError):
    """Lemon Squeezy kept the variant (PayPal subscriptions): the customer changes it in the portal."""

    status_code = 409
    reason = "change_requires_customer_portal"


class PlanNotAvailable(InvalidRequest):
    reason = "plan_not_available"


class IdempotencyKeyReused(InvalidRequest):
    reason = "idempotency_key_reused"


class RequestInProgress(OpsmeterError):
    status_code = 409
    reason = "request_in_progress"


class SubscriptionExists(OpsmeterError):
    """A checkout would start a second subscription: the live one changes plan instead."""

    status_code = 409
    reason = "subscription_exists"


class SubscriptionLinkedElsewhere(OpsmeterError):
    status_code = 409
    reason = "subscription_linked_to_another_workspace"


class ProviderUnavailable(Unavailable):
    reason = "billing_provider_unavailable"


class ProviderRejected(OpsmeterError):
    status_code = 502
    reason = "billing_provider_rejected"


class ReconciliationRunning(OpsmeterError):
    status_code = 409
    reason = "reconciliation_running"
