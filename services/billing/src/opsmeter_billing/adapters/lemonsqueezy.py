"""The Lemon Squeezy API over HTTP (JSON:API, bearer key), retried with backoff on 429, 5xx and network errors."""

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from opsmeter_billing.adapters import LemonSqueezyError, LemonSqueezyRejected
from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)

JSON_API = "application/vnd.api+json"
MAX_RETRY_AFTER_S = 10.0


def retry_delay(attempt: int, base_s: float, retry_after: str | None) -> float:
    """Exponential backoff (base, 2×base, 4×base…), or the server's ``Retry-After`` when it says more."""
    delay: float = base_s * 2 ** (attempt - 1)
    if retry_after and retry_after.strip().isdigit():
        delay = max(delay, float(retry_after))
    return min(delay, MAX_RETRY_AFTER_S)


class HttpLemonSqueezy:
    def __init__(
        self, client: httpx.AsyncClient, base_url: str, api_key: str, *, attempts: int = 4, backoff_s: float = 0.2
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._headers = {"Accept": JSON_API, "Content-Type": JSON_API, "Authorization": f"Bearer {api_key}"}
        self._attempts = attempts
        self._backoff_s = backoff_s

    async def get_subscription(self, subscription_id: str) -> Mapping[str, Any]:
        return await self._call("GET", _subscription(subscription_id), None)

    async def change_variant(self, subscription_id: str, variant_id: int) -> Mapping[str, Any]:
        body = {"data": {"type": "subscriptions", "id": subscription_id, "attributes": {"variant_id": variant_id}}}
        return await self._call("PATCH", _subscription(subscription_id), body)

    async def create_checkout(
        self, store_id: str, variant_id: int, custom: Mapping[str, str], redirect_url: str | None
    ) -> Mapping[str, Any]:
        attributes: dict[str, Any] = {"checkout_data": {"custom": dict(custom)}}
        if redirect_url:
            attributes["product_options"] = {"redirect_url": redirect_url}
        body = {
            "data": {
                "type": "checkouts",
                "attributes": attributes,
                "relationships": {
                    "store": {"data": {"type": "stores", "id": store_id}},
                    "variant": {"data": {"type": "variants", "id": str(variant_id)}},
                },
            }
        }
        return await self._call("POST", "/v1/checkouts", body)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Mapping[str, Any]:
        url = f"{self._base}{path}"
        last = ""
        for attempt in range(1, self._attempts + 1):
            retry_after = None
            try:
                answer = await self._client.request(method, url, json=body, headers=self._headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if answer.status_code < 300:
                    data = answer.json().get("data")
                    if not isinstance(data, Mapping):
                        raise LemonSqueezyError(f"{method} {url}: no JSON:API data object in the answer")
                    return data
                if answer.status_code != 429 and answer.status_code < 500:
                    raise LemonSqueezyRejected(answer.status_code, answer.text[:300])
                last = f"HTTP {answer.status_code}"
                retry_after = answer.headers.get("Retry-After")
            if attempt < self._attempts:
                delay = retry_delay(attempt, self._backoff_s, retry_after)
                log.warning("lemonsqueezy_retrying", method=method, attempt=attempt, error=last, delay_s=delay)
                await asyncio.sleep(delay)
        raise LemonSqueezyError(f"{method} {path} failed {self._attempts} times: {last}")


def _subscription(subscription_id: str) -> str:
    return f"/v1/subscriptions/{quote(subscription_id, safe='')}"
