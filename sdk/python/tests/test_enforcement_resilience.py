"""Enforcement that never stays closed on old news, and bad configuration that never reaches the provider call.

The ``server`` fixture (an :class:`opsmeter_double.Opsmeterd`) answers GET /v1/runtime/policy with its ``policy``, a
503 while that is None, and chat completions with "ok"."""

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import openai
import pytest
from opsmeter_double import Opsmeterd

from opsmeter import Opsmeter

PARAMS = {"model": "gpt-4o", "max_tokens": 100, "messages": []}


def blocked(until: datetime) -> dict[str, Any]:
    return {
        "policyMode": "enforce",
        "budgetExceeded": True,
        "exceededWindows": [{"window": "day", "periodEnd": until.isoformat()}],
        "runtimeActions": {"onBudgetExceeded": "block"},
    }


def action(om: Opsmeter) -> str | None:
    decision = om.policy.decide("openai", PARAMS, tokens_param="max_tokens")
    return None if decision is None else decision.action


def test_an_exceeded_budget_no_longer_blocks_once_its_windows_have_ended(server: Opsmeterd) -> None:
    server.policy = blocked(datetime.now(timezone.utc) + timedelta(milliseconds=300))
    om = Opsmeter("om_live_x_y", base_url=server.url, enforcement=True, policy_refresh_interval=60)
    try:
        om.policy.refresh()
        assert action(om) == "block"
        time.sleep(0.4)  # the window ends; Opsmeter is not asked again (a long refresh interval)
        assert action(om) is None
    finally:
        om.shutdown(timeout=1)


def test_with_opsmeter_unreachable_for_three_refresh_intervals_enforcement_fails_open(
    server: Opsmeterd, caplog: pytest.LogCaptureFixture
) -> None:
    server.policy = blocked(datetime.now(timezone.utc) + timedelta(hours=1))
    om = Opsmeter("om_live_x_y", base_url=server.url, enforcement=True, policy_refresh_interval=0.1)
    try:
        om.policy.refresh()
        assert action(om) == "block"
        server.policy = None  # Opsmeter is down
        deadline = time.monotonic() + 3
        with caplog.at_level(logging.WARNING, logger="opsmeter"):
            while action(om) is not None and time.monotonic() < deadline:
                om.policy.refresh()
                time.sleep(0.05)
            assert action(om) is None, "a snapshot nobody confirms any more still blocks"
            assert action(om) is None
        assert sum("enforcement is off" in r.getMessage() for r in caplog.records) == 1
        server.policy = blocked(datetime.now(timezone.utc) + timedelta(hours=1))
        om.policy.refresh()
        assert action(om) == "block"
    finally:
        om.shutdown(timeout=1)


@pytest.mark.parametrize(
    ("api_key", "base_url"),
    [
        ("om_live_ключ", "http://127.0.0.1:9"),  # a key no HTTP header can carry
        ("om_live_x_y", "http://[::1"),  # httpx.InvalidURL
        ("om_live_x_y", "ftp://opsmeter.example"),
    ],
)
def test_bad_configuration_turns_opsmeter_off_with_one_log_line_and_never_breaks_the_call(
    api_key: str, base_url: str, server: Opsmeterd, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="opsmeter"):
        om = Opsmeter(api_key, base_url=base_url, enforcement=True)
    try:
        client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=f"{server.url}/v1", max_retries=0))
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "ok"
        assert om.record(provider="openai", model="m", input_tokens=1, output_tokens=1) is None
        assert om.flush(timeout=1)
        assert om.stats().dropped.get("disabled", 0) >= 1
        said = [r.getMessage() for r in caplog.records if r.name == "opsmeter"]
        assert len(said) == 1, said
        assert said[0].startswith("opsmeter is off"), said
    finally:
        om.shutdown(timeout=1)
