"""``POST /v1/ingest/demo`` writes up to 20,000 events a call outside every plan quota: a load counts against the
rate limit, and a workspace may load only so many demo events per UTC day (ADR 65)."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsmeter_cli.stack import Stack
from tests.e2e.test_gateway_workers import free_workspace
from tests.e2e.test_ingest_faults import _stack
from tests.e2e.test_ingest_governance import wait_for_fresh_window
from tests.e2e.test_ingest_to_usage import STATUS_FIELDS

DEMO_EVENTS_PER_DAY = 100


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _stack(tmp_path_factory, OPSMETER_INGEST_GATEWAY_DEMO_EVENTS_PER_DAY=str(DEMO_EVENTS_PER_DAY))


def load(stack: Stack, ws: dict[str, Any], events: int) -> httpx.Response:
    return httpx.post(
        f"{stack.config.url('ingest-gateway')}/v1/ingest/demo",
        json={"events": events, "days": 1},
        headers={"X-API-Key": ws["apiKey"]},
        timeout=30,
    )


def test_a_workspace_loads_at_most_its_daily_demo_allowance(demo_stack: Stack) -> None:
    ws = free_workspace(demo_stack)
    assert [load(demo_stack, ws, 40).status_code for _ in range(2)] == [202, 202]
    refused = load(demo_stack, ws, 40)  # 120 > 100: refused whole, nothing written
    assert refused.status_code == 429
    answer = refused.json()
    assert answer["reason"] == "rate_limited"
    assert "at most 100 demo events per workspace per UTC day" in answer["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 24 * 3600
    assert load(demo_stack, ws, 20).status_code == 202  # what is left of the day still fits
    assert load(demo_stack, free_workspace(demo_stack), 40).status_code == 202  # the allowance is per workspace


def test_a_demo_load_counts_against_the_rate_limit(demo_stack: Stack) -> None:
    ws = free_workspace(demo_stack)  # Free: 120 requests per minute
    wait_for_fresh_window()
    statuses = [load(demo_stack, ws, 1).status_code for _ in range(99)]
    assert statuses == [202] * 99  # 99 events of the 100 allowed today
    single = f"{demo_stack.config.url('ingest-gateway')}/v1/ingest/llm-request"
    bodies = [{"externalRequestId": f"r{i}", "provider": "openai", "model": "gpt-4o-mini", "inputTokens": 1,
               "outputTokens": 1} for i in range(22)]  # fmt: skip
    answers = [httpx.post(single, json=b, headers={"X-API-Key": ws["apiKey"]}).status_code for b in bodies]
    assert answers == [202] * 21 + [429]  # 99 demo loads + 21 events = the minute's 120 requests


def test_a_bad_demo_load_is_answered_like_any_ingest_request(demo_stack: Stack) -> None:
    ws = free_workspace(demo_stack)
    url = f"{demo_stack.config.url('ingest-gateway')}/v1/ingest/demo"
    too_many = httpx.post(url, json={"events": 0, "days": 1, "extra": 1}, headers={"X-API-Key": ws["apiKey"]})
    assert too_many.status_code == 422
    answer = too_many.json()
    assert set(answer) >= STATUS_FIELDS
    assert answer["reason"] == "invalid_payload"
    assert {e["field"] for e in answer["errors"]} == {"events", "extra"}
    not_json = httpx.post(
        url, content=b"{events", headers={"X-API-Key": ws["apiKey"], "Content-Type": "application/json"}
    )
    assert (not_json.status_code, not_json.json()["reason"]) == (400, "invalid_payload")
    assert httpx.post(url, json={"events": 0}).status_code == 401, "the key is checked before the body"
