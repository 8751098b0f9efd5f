"""A Lemon Squeezy test double that speaks HTTP: the subscription endpoints billing uses, and signed webhooks.

A real local server (stdlib, in a thread) for tests, benchmarks and the local stack:

- ``GET /v1/subscriptions/{id}`` and ``PATCH /v1/subscriptions/{id}`` (JSON:API, ``Authorization: Bearer``),
  with the subscription object shaped as Lemon Squeezy documents it (``data.attributes.variant_id``,
  ``status``, ``renews_at``, ``ends_at``, ``updated_at``, ``urls.customer_portal``, ``test_mode``…).
  A PayPal subscription keeps its variant on PATCH, as Lemon Squeezy does.
- :meth:`LemonSqueezyDouble.webhook_body` builds a delivery (``meta.event_name``, ``meta.custom_data``,
  ``meta.test_mode``, ``data`` = the subscription object); :meth:`deliver` POSTs it with ``X-Signature``,
  the hex HMAC-SHA256 of the raw body under the signing secret, and ``X-Event-Name``.
- ``POST /v1/checkouts`` creates a checkout (``checkout_data.custom``, ``product_options.redirect_url``) whose
  ``attributes.url`` is the double's own checkout page: ``GET`` shows it, its Pay button (or
  :meth:`complete_checkout`) creates the subscription and delivers ``subscription_created`` with the checkout's
  custom data as ``meta.custom_data`` to :attr:`webhook_url`, as Lemon Squeezy does, then goes to the redirect URL.
- :meth:`fail_next` makes the next calls answer 429/5xx, to exercise retries.
"""

import hashlib
import hmac
import html
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from opsmeter_runtime.http_double import LocalHttpDouble

JSON_API = "application/vnd.api+json"
VARIANTS = "101=starter,102=pro,103=team,104=enterprise"
"""The variant ids the double's users configure billing with (``OPSMETER_LEMONSQUEEZY_VARIANTS``)."""


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None


@dataclass
class FakeSubscription:
    id: str
    variant_id: int
    status: str = "active"
    payment_processor: str = "stripe"
    test_mode: bool = False
    renews_at: datetime | None = None
    ends_at: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeCheckout:
    id: str
    variant_id: int
    custom: dict[str, Any]
    redirect_url: str | None
    subscription_id: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: Any


class LemonSqueezyDouble(LocalHttpDouble):
    """Start with ``with LemonSqueezyDouble(api_key=..., webhook_secret=...) as ls:``; ``ls.url`` is its base URL."""

    def __init__(
        self,
        *,
        api_key: str = "ls_test_key",
        webhook_secret: str = "ls_test_secret",  # noqa: S107 - a test double's own secret
        store_id: int = 1,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.store_id = store_id
        self.requests: list[RecordedRequest] = []
        self._subscriptions: dict[str, FakeSubscription] = {}
        self.checkouts: dict[str, FakeCheckout] = {}
        self.webhook_url: str | None = None
        """Where a paid checkout's ``subscription_created`` goes (billing's webhook route), once known."""
        self._failures: list[int] = []
        self._next_id = 1000
        self._clock = datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()
        super().__init__(port=port)

    thread_name = "lemonsqueezy-double"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def service_env(self) -> dict[str, str]:
        """What billing needs to talk to this double (``OPSMETER_LEMONSQUEEZY_*``)."""
        return {
            "OPSMETER_LEMONSQUEEZY_API_URL": self.url,
            "OPSMETER_LEMONSQUEEZY_API_KEY": self.api_key,
            "OPSMETER_LEMONSQUEEZY_WEBHOOK_SECRET": self.webhook_secret,
            "OPSMETER_LEMONSQUEEZY_VARIANTS": VARIANTS,
            "OPSMETER_LEMONSQUEEZY_STORE_ID": str(self.store_id),
        }

    # --- the store's state ---------------------------------------------------------------------------

    def _tick(self) -> datetime:
        """Lemon Squeezy's clock: every change gets a strictly later ``updated_at``."""
        self._clock = max(self._clock + timedelta(seconds=1), datetime.now(UTC).replace(microsecond=0))
        return self._clock

    def create_subscription(
        self, variant_id: int, *, payment_processor: str = "stripe", test_mode: bool = False, status: str = "active"
    ) -> str:
        with self._lock:
            self._next_id += 1
            now = self._tick()
            sub = FakeSubscription(
                id=str(self._next_id),
                variant_id=variant_id,
                status=status,
                payment_processor=payment_processor,
                test_mode=test_mode,
                renews_at=now + timedelta(days=30),
                created_at=now,
                updated_at=now,
            )
            self._subscriptions[sub.id] = sub
            return sub.id

    def update(self, subscription_id: str, **changes: Any) -> None:
        """Change a subscription on the Lemon Squeezy side (variant_id, status, renews_at, ends_at…)."""
        with self._lock:
            sub = self._subscriptions[subscription_id]
            for name, value in changes.items():
                setattr(sub, name, value)
            sub.updated_at = self._tick()

    def subscription(self, subscription_id: str) -> FakeSubscription:
        return self._subscriptions[subscription_id]

    def fail_next(self, *statuses: int) -> None:
        """The next API calls answer these statuses (e.g. 429, 503) before behaving again."""
        with self._lock:
            self._failures.extend(statuses)

    def resource(self, subscription_id: str) -> dict[str, Any]:
        """The JSON:API ``data`` object of a subscription, as Lemon Squeezy documents it."""
        sub = self._subscriptions[subscription_id]
        portal = f"{self.url}/billing/{sub.id}?expires=1700000000&signature=double"
        return {
            "type": "subscriptions",
            "id": sub.id,
            "attributes": {
                "store_id": self.store_id,
                "customer_id": int(sub.id) + 5000,
                "order_id": int(sub.id) + 7000,
                "order_item_id": int(sub.id) + 9000,
                "product_id": 1,
                "variant_id": sub.variant_id,
                "product_name": "Opsmeter",
                "variant_name": f"Variant {sub.variant_id}",
                "user_name": "Test Customer",
                "user_email": "customer@example.com",
                "status": sub.status,
                "status_formatted": sub.status.replace("_", " ").title(),
                "card_brand": "visa" if sub.payment_processor == "stripe" else None,
                "card_last_four": "4242" if sub.payment_processor == "stripe" else None,
                "payment_processor": sub.payment_processor,
                "pause": None,
                "cancelled": sub.status == "cancelled",
                "trial_ends_at": None,
                "billing_anchor": sub.created_at.day,
                "first_subscription_item": {
                    "id": int(sub.id) + 3000,
                    "subscription_id": int(sub.id),
                    "price_id": sub.variant_id * 10,
                    "quantity": 1,
                    "created_at": _iso(sub.created_at),
                    "updated_at": _iso(sub.updated_at),
                },
                "urls": {
                    "update_payment_method": f"{portal}&page=payment-details",
                    "customer_portal": portal,
                    "customer_portal_update_subscription": f"{portal}&page=update-subscription",
                },
                "renews_at": _iso(sub.renews_at),
                "ends_at": _iso(sub.ends_at),
                "created_at": _iso(sub.created_at),
                "updated_at": _iso(sub.updated_at),
                "test_mode": sub.test_mode,
            },
            "relationships": {
                name: {"links": {"related": f"{self.url}/v1/subscriptions/{sub.id}/{name}"}}
                for name in ("store", "customer", "order", "order-item", "product", "variant")
            },
            "links": {"self": f"{self.url}/v1/subscriptions/{sub.id}"},
        }

    def complete_checkout(self, checkout_id: str) -> tuple[str, bytes]:
        """The customer paid: a live subscription of the checkout's variant, and its ``subscription_created``
        delivery carrying the checkout's custom data (not yet sent)."""
        checkout = self.checkouts[checkout_id]
        if checkout.subscription_id is None:
            checkout.subscription_id = self.create_subscription(checkout.variant_id)
        body = self.webhook_body(checkout.subscription_id, "subscription_created", custom_data=checkout.custom)
        return checkout.subscription_id, body

    def _create_checkout(self, body: Any) -> tuple[int, dict[str, Any]]:
        data = (body or {}).get("data") or {}
        attributes = data.get("attributes") or {}
        relationships = data.get("relationships") or {}
        store = ((relationships.get("store") or {}).get("data") or {}).get("id")
        variant = ((relationships.get("variant") or {}).get("data") or {}).get("id")
        if data.get("type") != "checkouts" or str(store) != str(self.store_id) or not str(variant or "").isdigit():
            return 422, _errors(422, "data.type, relationships.store and relationships.variant are required")
        custom = (attributes.get("checkout_data") or {}).get("custom") or {}
        redirect = (attributes.get("product_options") or {}).get("redirect_url") or None
        checkout = FakeCheckout(str(uuid.uuid4()), int(str(variant)), dict(custom), redirect)
        with self._lock:
            self.checkouts[checkout.id] = checkout
        return 201, {
            "jsonapi": {"version": "1.0"},
            "links": {"self": f"{self.url}/v1/checkouts/{checkout.id}"},
            "data": {
                "type": "checkouts",
                "id": checkout.id,
                "attributes": {
                    "store_id": self.store_id,
                    "variant_id": checkout.variant_id,
                    "custom_price": None,
                    "product_options": {"redirect_url": redirect or ""},
                    "checkout_data": {"custom": checkout.custom},
                    "expires_at": None,
                    "created_at": _iso(datetime.now(UTC)),
                    "test_mode": False,
                    "url": f"{self.url}/checkout/custom/{checkout.id}?signature=double",
                },
            },
        }

    def _checkout_page(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        """The customer's side: the checkout page, and paying on it."""
        parts = path.strip("/").split("/")
        checkout = self.checkouts.get(parts[2]) if len(parts) >= 3 else None
        if checkout is None:
            return 404, {"Content-Type": "text/plain"}, b"no such checkout"
        if method == "POST" and parts[3:] == ["pay"]:
            _, delivery = self.complete_checkout(checkout.id)
            if self.webhook_url is not None:
                self.deliver(self.webhook_url, delivery)
            return 303, {"Location": checkout.redirect_url or f"{self.url}/checkout/custom/{checkout.id}"}, b""
        pay = '<form method="post" action="pay"><button>Pay</button></form>'
        paid = "<p>Paid.</p>" if checkout.subscription_id else pay
        page = (
            '<!doctype html><link rel="icon" href="data:,"><title>Lemon Squeezy checkout (test double)</title>'
            f"<h1>Checkout: variant {checkout.variant_id}</h1>{paid}"
        )
        base = f'<base href="/checkout/custom/{html.escape(checkout.id)}/">'
        return 200, {"Content-Type": "text/html; charset=utf-8"}, (base + page).encode()

    # --- webhooks ------------------------------------------------------------------------------------

    def webhook_body(
        self,
        subscription_id: str,
        event_name: str = "subscription_updated",
        *,
        custom_data: Mapping[str, Any] | None = None,
        test_mode: bool | None = None,
    ) -> bytes:
        """A delivery of the subscription's current state; the same bytes can be delivered again."""
        sub = self._subscriptions[subscription_id]
        meta: dict[str, Any] = {
            "test_mode": sub.test_mode if test_mode is None else test_mode,
            "event_name": event_name,
            "webhook_id": f"wh_{hashlib.sha256(event_name.encode()).hexdigest()[:8]}",
        }
        if custom_data is not None:
            meta["custom_data"] = dict(custom_data)
        return json.dumps({"meta": meta, "data": self.resource(subscription_id)}, separators=(",", ":")).encode()

    def sign(self, body: bytes, secret: str | None = None) -> str:
        return hmac.new((secret or self.webhook_secret).encode(), body, hashlib.sha256).hexdigest()

    def deliver(self, url: str, body: bytes, *, signature: str | None = None, timeout: float = 10.0) -> int:
        """POST a delivery signed with the secret (or the given signature); the status it answered."""
        event_name = json.loads(body).get("meta", {}).get("event_name", "")
        request = urllib.request.Request(  # noqa: S310 - the caller's own local endpoint
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Event-Name": str(event_name),
                "X-Signature": signature if signature is not None else self.sign(body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    # --- HTTP ----------------------------------------------------------------------------------------

    def _answer(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, body))
            if self._failures:
                status = self._failures.pop(0)
                return status, _errors(status, "Injected failure")
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, _errors(401, "Unauthenticated.")
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "checkouts"]:
            return self._create_checkout(body)
        if len(parts) != 3 or parts[:2] != ["v1", "subscriptions"] or parts[2] not in self._subscriptions:
            return 404, _errors(404, "Not Found")
        subscription_id = parts[2]
        if method == "PATCH":
            attributes = ((body or {}).get("data") or {}).get("attributes") or {}
            variant_id = attributes.get("variant_id")
            sub = self._subscriptions[subscription_id]
            if variant_id is not None and sub.payment_processor != "paypal" and variant_id != sub.variant_id:
                self.update(subscription_id, variant_id=int(variant_id))
        return 200, {
            "jsonapi": {"version": "1.0"},
            "links": {"self": f"{self.url}/v1/subscriptions/{subscription_id}"},
            "data": self.resource(subscription_id),
        }

    def patches(self) -> Iterator[RecordedRequest]:
        return (r for r in self.requests if r.method == "PATCH")


def _errors(status: int, detail: str) -> dict[str, Any]:
    return {"jsonapi": {"version": "1.0"}, "errors": [{"status": str(status), "title": detail, "detail": detail}]}


def _handler_for(double: LemonSqueezyDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?")[0]
            if path.startswith("/checkout/custom/"):
                status, page_headers, data = double._checkout_page(self.command, path)
                self.send_response(status)
                for name, value in page_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            status, payload = double._answer(self.command, path, headers, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", JSON_API)
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_PATCH = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main() -> None:
    """``python -m opsmeter_runtime.lemonsqueezy_double [PORT]``: serve the double until Ctrl-C."""
    import sys

    with LemonSqueezyDouble(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as double:
        double.serve_until_interrupted(double.service_env())


if __name__ == "__main__":
    main()
