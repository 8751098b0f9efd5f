"""The Python SDK's wrappers of the real ``openai`` and ``anthropic`` clients, pointed at the provider double,
recording into the real stack; and runtime enforcement driven by the policy engine's ``runtimeActions``."""

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest
from genai_prices import Usage, calc_price

from opsmeter import BudgetExceededError, Opsmeter
from opsmeter_runtime.provider_double import ProviderDouble
from tests.conftest import RunningStack
from tests.e2e.test_sdk_python import eventually, workspace

MESSAGES = [{"role": "user", "content": "Summarise the order."}]


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderDouble]:
    with ProviderDouble() as double:
        yield double


@pytest.fixture(scope="module")
def wrapped_workspace(stack: RunningStack) -> dict[str, Any]:
    return workspace(stack, plan="team")


@pytest.fixture(scope="module")
def enforced_workspace(stack: RunningStack) -> dict[str, Any]:
    return exceeded_workspace(stack)


def rows(stack: RunningStack, ws: dict[str, Any], endpoint_tag: str, expected: int) -> list[dict[str, Any]]:
    """The workspace's raw rows for one endpoint tag, once ``expected`` of them are there."""

    def query() -> list[dict[str, Any]] | None:
        answer = httpx.post(
            f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/sql",
            json={
                "sql": "SELECT provider, model, input_tokens, output_tokens, cached_input_tokens, "
                "cache_write_input_tokens, reasoning_tokens, "
                "cost_micro_usd, status, error_code, metadata, endpoint_tag, user_id FROM llm_requests_raw "
                f"WHERE endpoint_tag = '{endpoint_tag}' ORDER BY occurred_at"
            },
            headers={"Authorization": f"Bearer {ws['adminToken']}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        found = [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]
        return found if len(found) >= expected else None

    found: list[dict[str, Any]] = eventually(query, timeout=30)
    assert len(found) == expected, found
    for row in found:
        row["metadata"] = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"]
    return found


def micro(usd: Decimal) -> int:
    return int((usd * 1_000_000).to_integral_value())


class TestWrappers:
    @pytest.fixture
    def ws(self, wrapped_workspace: dict[str, Any]) -> dict[str, Any]:
        return wrapped_workspace

    @pytest.fixture
    def om(self, stack: RunningStack, ws: dict[str, Any]) -> Iterator[Opsmeter]:
        client = Opsmeter(ws["apiKey"], base_url=stack.url("ingest-gateway"))
        yield client
        client.shutdown(timeout=5)

    def test_openai_calls_sync_async_and_streamed_record_the_usage_and_cost(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble
    ) -> None:
        tag = f"wrap.openai.{uuid.uuid4().hex[:6]}"
        client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
        async_client = om.wrap_openai(openai.AsyncOpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
        with om.attribution(endpoint_tag=tag, user_id="u_1", prompt_version="v3"):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
            assert reply.choices[0].message.content
            streamed = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)  # type: ignore[union-attr]
            assert text.strip() == reply.choices[0].message.content

            async def both() -> None:
                await async_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
                stream = await async_client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MESSAGES,  # type: ignore[arg-type]
                    stream=True,
                )
                async for _ in stream:  # type: ignore[union-attr]
                    pass

            asyncio.run(both())
        assert om.flush(timeout=30)
        usage = fake.openai_usage
        expected_cost = calc_price(
            Usage(
                input_tokens=usage.prompt_tokens,
                cache_read_tokens=usage.cached_tokens,
                output_tokens=usage.completion_tokens,
            ),
            model_ref="gpt-4o-mini",
            provider_id="openai",
        ).total_price
        found = rows(stack, ws, tag, 4)
        for row in found:
            assert row["provider"] == "openai"
            assert row["model"] == "gpt-4o-mini"
            assert (row["input_tokens"], row["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
            assert row["cached_input_tokens"] == usage.cached_tokens
            assert row["reasoning_tokens"] == usage.reasoning_tokens
            assert row["cost_micro_usd"] == micro(expected_cost)
            assert (row["status"], row["user_id"]) == ("success", "u_1")
        assert [c.body.get("stream_options") for c in fake.calls_to("openai")][-4:] == [
            None,
            {"include_usage": True},
            None,
            {"include_usage": True},
        ]

    def test_anthropic_cache_reads_and_writes_are_counted_inside_input(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble
    ) -> None:
        tag = f"wrap.anthropic.{uuid.uuid4().hex[:6]}"
        client = om.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant", base_url=fake.url, max_retries=0))
        per_call: Any = {"opsmeter_endpoint_tag": tag}  # attribution per call, taken off before the provider sees it
        message = client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=512,
            messages=MESSAGES,  # type: ignore[arg-type]
            **per_call,
        )
        assert message.usage.cache_read_input_tokens == fake.anthropic_usage.cache_read_input_tokens
        with client.messages.create(  # type: ignore[union-attr]
            model="claude-sonnet-4-5",
            max_tokens=512,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            **per_call,
        ) as stream:
            kinds = [event.type for event in stream]
        assert kinds[0] == "message_start"
        assert kinds[-1] == "message_stop"
        assert om.flush(timeout=30)
        usage = fake.anthropic_usage
        whole_input = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        # The SDK sends cacheWriteInputTokens by default, so cache writes are priced as writes, not plain input.
        expected_cost = calc_price(
            Usage(
                input_tokens=whole_input,
                cache_read_tokens=usage.cache_read_input_tokens,
                cache_write_tokens=usage.cache_creation_input_tokens,
                output_tokens=usage.output_tokens,
            ),
            model_ref="claude-sonnet-4-5",
            provider_id="anthropic",
        ).total_price
        for row in rows(stack, ws, tag, 2):
            assert (row["provider"], row["model"]) == ("anthropic", "claude-sonnet-4-5")
            assert row["input_tokens"] == whole_input
            assert row["cached_input_tokens"] == usage.cache_read_input_tokens
            assert row["cache_write_input_tokens"] == usage.cache_creation_input_tokens
            assert row["output_tokens"] == usage.output_tokens
            assert row["cost_micro_usd"] == micro(expected_cost)

    def test_a_failed_provider_call_is_recorded_as_an_error_and_still_raises(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble
    ) -> None:
        tag = f"wrap.error.{uuid.uuid4().hex[:6]}"
        client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
        fake.fail_next(500)
        with pytest.raises(openai.InternalServerError), om.attribution(endpoint_tag=tag):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        assert om.flush(timeout=30)
        [row] = rows(stack, ws, tag, 1)
        assert (row["status"], row["error_code"], row["input_tokens"]) == ("error", "http_500", 0)


def put(stack: RunningStack, ws: dict[str, Any], what: str, body: dict[str, Any]) -> None:
    answer = httpx.put(
        f"{stack.url('policy-engine')}/v1/workspaces/{ws['workspaceId']}/{what}",
        json=body,
        headers={"Authorization": f"Bearer {ws['adminToken']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def runtime_policy(stack: RunningStack, ws: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.get(f"{stack.url('policy-engine')}/v1/runtime/policy", headers={"X-API-Key": ws["apiKey"]})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def exceeded_workspace(stack: RunningStack) -> dict[str, Any]:
    """A workspace whose daily budget is exceeded (advisory: ingest stays open, so actions are recorded)."""
    created = workspace(stack, plan="team")
    put(stack, created, "budgets", {"dailyUsd": 0.01})
    httpx.post(
        f"{stack.url('ingest-gateway')}/v1/ingest/llm-request",
        json={
            "externalRequestId": uuid.uuid4().hex,
            "provider": "openai",
            "model": "gpt-4o",
            "inputTokens": 1_000_000,
            "outputTokens": 0,
        },
        headers={"X-API-Key": created["apiKey"]},
    ).raise_for_status()
    eventually(lambda: runtime_policy(stack, created)["budgetExceeded"], timeout=30)
    return created


ACTIONS: dict[str, dict[str, Any]] = {
    "block": {"onBudgetExceeded": "block"},
    "clamp": {"onBudgetExceeded": "clamp", "clampMaxTokens": 64},
    "fallback": {"onBudgetExceeded": "fallback", "fallbackModels": {"gpt-4o": "gpt-4o-mini"}},
    "queue": {"onBudgetExceeded": "queue", "queueMaxWaitSeconds": 1},
}


class TestRuntimeEnforcement:
    @pytest.fixture
    def ws(self, enforced_workspace: dict[str, Any]) -> dict[str, Any]:
        return enforced_workspace

    @pytest.fixture
    def om(self, stack: RunningStack, ws: dict[str, Any]) -> Iterator[Opsmeter]:
        client = Opsmeter(
            ws["apiKey"],
            base_url=stack.url("ingest-gateway"),
            policy_url=stack.url("policy-engine"),
            enforcement=True,
            policy_refresh_interval=0.5,
        )
        yield client
        client.shutdown(timeout=5)

    def configure(self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, action: str, kill_switch: bool) -> None:
        put(stack, ws, "policy", {"killSwitch": kill_switch, "runtimeActions": ACTIONS[action]})
        snapshot = om.policy.refresh()
        assert snapshot is not None
        assert snapshot.budget_exceeded
        assert snapshot.policy_mode == ("observe" if kill_switch else "enforce")

    def test_the_policy_engine_serves_runtime_actions_to_an_api_key_only(
        self, stack: RunningStack, ws: dict[str, Any]
    ) -> None:
        put(stack, ws, "policy", {"killSwitch": False, "runtimeActions": ACTIONS["clamp"]})
        body = runtime_policy(stack, ws)
        assert body["runtimeActions"]["onBudgetExceeded"] == "clamp"
        assert body["runtimeActions"]["clampMaxTokens"] == 64
        assert body["exceededWindows"][0]["window"] == "daily"
        refused = httpx.get(f"{stack.url('policy-engine')}/v1/runtime/policy", headers={"X-API-Key": ws["adminToken"]})
        assert refused.status_code == 401
        invalid = httpx.put(
            f"{stack.url('policy-engine')}/v1/workspaces/{ws['workspaceId']}/policy",
            json={"runtimeActions": {"onBudgetExceeded": "clamp"}},
            headers={"Authorization": f"Bearer {ws['adminToken']}"},
        )
        assert invalid.status_code == 422

    def test_block_raises_before_the_provider_is_called(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble
    ) -> None:
        self.configure(stack, ws, om, "block", kill_switch=False)
        client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
        before = len(fake.calls_to("openai"))
        tag = f"enforce.block.{uuid.uuid4().hex[:6]}"
        with pytest.raises(BudgetExceededError) as raised, om.attribution(endpoint_tag=tag):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert raised.value.action == "block"
        assert len(fake.calls_to("openai")) == before
        assert om.flush(timeout=30)
        [row] = rows(stack, ws, tag, 1)
        assert row["metadata"]["opsmeterAction"] == "block"
        assert row["metadata"]["opsmeterActionMode"] == "applied"
        assert (row["status"], row["error_code"]) == ("error", "budget_blocked")

    def test_the_first_wrapped_call_waits_for_the_policy(
        self, stack: RunningStack, ws: dict[str, Any], fake: ProviderDouble
    ) -> None:
        put(stack, ws, "policy", {"killSwitch": False, "runtimeActions": ACTIONS["block"]})
        fresh = Opsmeter(
            ws["apiKey"],
            base_url=stack.url("ingest-gateway"),
            policy_url=stack.url("policy-engine"),
            enforcement=True,
            policy_refresh_interval=3600,
            flush_interval=3600,  # the sender thread does not fetch the policy before the call
        )
        try:
            client = fresh.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
            before = len(fake.calls_to("openai"))
            with pytest.raises(BudgetExceededError):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
            assert len(fake.calls_to("openai")) == before
        finally:
            fresh.shutdown(timeout=5)

    def test_under_hard_stop_block_still_raises_and_the_refused_record_is_counted(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble
    ) -> None:
        put(stack, ws, "policy", {"enforcement": "hard_stop"})
        try:
            self.configure(stack, ws, om, "block", kill_switch=False)
            client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
            before = len(fake.calls_to("openai"))
            with pytest.raises(BudgetExceededError):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
            assert len(fake.calls_to("openai")) == before
            assert om.flush(timeout=30)
            assert om.stats().dropped == {"budget_exceeded": 1}  # the gateway's hard stop refuses the record too
            assert om.flags.budget_exceeded
        finally:
            put(stack, ws, "policy", {"enforcement": "advisory"})

    def test_clamp_lowers_max_tokens_in_the_request_the_provider_gets(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble
    ) -> None:
        self.configure(stack, ws, om, "clamp", kill_switch=False)
        client = om.wrap_anthropic(anthropic.Anthropic(api_key="sk-ant", base_url=fake.url, max_retries=0))
        tag = f"enforce.clamp.{uuid.uuid4().hex[:6]}"
        with om.attribution(endpoint_tag=tag):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=4096, messages=MESSAGES)  # type: ignore[arg-type]
        assert fake.calls_to("anthropic")[-1].body["max_tokens"] == 64
        assert om.flush(timeout=30)
        [row] = rows(stack, ws, tag, 1)
        assert row["metadata"]["opsmeterAction"] == "clamp"
        assert row["metadata"]["opsmeterActionDetail"] == "max_tokens 4096->64"

    def test_fallback_calls_the_cheaper_model(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble
    ) -> None:
        self.configure(stack, ws, om, "fallback", kill_switch=False)
        client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
        tag = f"enforce.fallback.{uuid.uuid4().hex[:6]}"
        with om.attribution(endpoint_tag=tag):
            reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert fake.calls_to("openai")[-1].body["model"] == "gpt-4o-mini"
        assert reply.model == "gpt-4o-mini"
        assert om.flush(timeout=30)
        [row] = rows(stack, ws, tag, 1)
        assert row["model"] == "gpt-4o-mini"
        assert row["metadata"]["opsmeterAction"] == "fallback"

    def test_queue_waits_for_the_window_then_gives_up_without_calling(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble
    ) -> None:
        self.configure(stack, ws, om, "queue", kill_switch=False)
        client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
        before = len(fake.calls_to("openai"))
        started = time.monotonic()
        with pytest.raises(BudgetExceededError) as raised:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
        assert raised.value.action == "queue"
        assert 0.9 <= time.monotonic() - started < 5
        assert len(fake.calls_to("openai")) == before

    def test_queue_goes_ahead_once_the_budget_allows_it(self, stack: RunningStack, fake: ProviderDouble) -> None:
        own = exceeded_workspace(stack)
        put(stack, own, "policy", {"runtimeActions": {"onBudgetExceeded": "queue", "queueMaxWaitSeconds": 20}})
        om = Opsmeter(
            own["apiKey"],
            base_url=stack.url("ingest-gateway"),
            policy_url=stack.url("policy-engine"),
            enforcement=True,
            policy_refresh_interval=0.5,
        )
        try:
            client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
            raise_budget = threading.Timer(1.5, lambda: put(stack, own, "budgets", {"dailyUsd": 1000}))
            raise_budget.start()
            started = time.monotonic()
            with om.attribution(endpoint_tag="enforce.queue"):
                reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
            waited = time.monotonic() - started
            raise_budget.join()
            assert reply.model == "gpt-4o"
            assert 1.5 <= waited < 15
            assert om.flush(timeout=30)
            [row] = rows(stack, own, "enforce.queue", 1)
            assert row["metadata"]["opsmeterAction"] == "queue"
            assert row["metadata"]["opsmeterActionDetail"].startswith("waited ")
        finally:
            om.shutdown(timeout=5)

    @pytest.mark.parametrize("action", ["block", "clamp", "fallback"])
    def test_with_the_kill_switch_on_nothing_changes_but_the_record_says_what_would_have(
        self, stack: RunningStack, ws: dict[str, Any], om: Opsmeter, fake: ProviderDouble, action: str
    ) -> None:
        self.configure(stack, ws, om, action, kill_switch=True)
        client = om.wrap_openai(openai.OpenAI(api_key="sk-test", base_url=fake.openai_url, max_retries=0))
        tag = f"enforce.observe.{action}.{uuid.uuid4().hex[:6]}"
        before = len(fake.calls_to("openai"))
        with om.attribution(endpoint_tag=tag):
            client.chat.completions.create(model="gpt-4o", max_tokens=4096, messages=MESSAGES)  # type: ignore[arg-type]
        calls = fake.calls_to("openai")
        assert len(calls) == before + 1
        assert (calls[-1].body["model"], calls[-1].body["max_tokens"]) == ("gpt-4o", 4096)
        assert om.flush(timeout=30)
        [row] = rows(stack, ws, tag, 1)
        assert row["model"] == "gpt-4o"
        assert row["metadata"]["opsmeterAction"] == action
        assert row["metadata"]["opsmeterActionMode"] == "observed"
        put(stack, ws, "policy", {"killSwitch": False})
