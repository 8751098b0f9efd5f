"""The ingest record on the wire: SPEC §5's camelCase fields, built from the SDK's snake_case arguments."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

FIELDS = {
    "external_request_id": "externalRequestId",
    "provider": "provider",
    "model": "model",
    "endpoint_tag": "endpointTag",
    "prompt_version": "promptVersion",
    "user_id": "userId",
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "total_tokens": "totalTokens",
    "cached_input_tokens": "cachedInputTokens",
    "cache_write_input_tokens": "cacheWriteInputTokens",
    "cache_write_1h_input_tokens": "cacheWrite1hInputTokens",
    "reasoning_tokens": "reasoningTokens",
    "reported_cost_usd": "reportedCostUsd",
    "latency_ms": "latencyMs",
    "status": "status",
    "error_code": "errorCode",
    "data_mode": "dataMode",
    "environment": "environment",
    "timestamp": "timestamp",
    "metadata": "metadata",
}
"""Python argument → wire field, for every field the gateway knows (SPEC §5)."""


_PREFIX = uuid.uuid4().hex[:20]
_COUNTER = itertools.count(1)


def _reseed() -> None:
    """A forked child must not repeat its parent's ids (the gateway would count them as repeats)."""
    global _PREFIX, _COUNTER
    _PREFIX, _COUNTER = uuid.uuid4().hex[:20], itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> str:
    """``om_`` + 80 random bits drawn once per process + a counter: unique without a syscall per record."""
    return f"om_{_PREFIX}{next(_COUNTER):012x}"


def rfc3339(at: datetime | None = None) -> str:
    moment = at if at is not None else datetime.now(timezone.utc)
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.isoformat()


def event(values: Mapping[str, Any], *, send_cache_write_tokens: bool) -> dict[str, Any]:
    """The wire record of one call; unset fields are left out, so the gateway's defaults apply.

    Cache writes are counted inside ``inputTokens`` (SPEC §5) and also sent as ``cacheWriteInputTokens`` so the
    gateway prices them as writes; ``send_cache_write_tokens=False`` withholds the field (for a gateway too old
    to accept it: it rejects unknown fields), and writes are then priced as plain input.
    """
    body: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name in ("cache_write_input_tokens", "cache_write_1h_input_tokens") and not send_cache_write_tokens:
            continue
        if name == "timestamp" and isinstance(value, datetime):
            value = rfc3339(value)
        body[FIELDS[name]] = value
    if "externalRequestId" not in body:
        body["externalRequestId"] = new_request_id()
    if "timestamp" not in body:
        body["timestamp"] = rfc3339()
    return body
