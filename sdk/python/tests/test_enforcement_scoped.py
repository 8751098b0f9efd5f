"""Scoped budgets (one endpoint tag, model or user) act only on their own calls: a real OpenAI client, wrapped,
against a local Opsmeter (runtime policy and ingest) and provider: the ``server`` fixture, an
:class:`opsmeter_double.Opsmeterd` each test gives its runtime policy (built by :func:`policy`)."""

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import openai
import pytest
from opsmeter_double import Opsmeterd

from opsmeter import BudgetExceededError, Opsmeter

MESSAGES: Any = [{"role": "user", "content": "hi"}]
LATER = "2999-01-01T00:00:00Z"


def policy(
    *scoped: dict[str, Any], workspace: bool = False, old_server: bool = False, **actions: Any
) -> dict[str, Any]:
    """A runtime-policy answer: the workspace's own budget exceeded or not, these scoped budgets, block on exceeded."""
    body: dict[str, Any] = {
        "workspaceId": "ws_x",
        "policyMode": "enforce",
        "enforcement": "advisory",
        "killSwitch": False,
        "budgetWarning": workspace or any(b["warning"] for b in scoped),
        "budgetExceeded": workspace or any(b["exceeded"] for b in scoped),
        "exceededWindows": [{"window": "daily", "periodEnd": LATER}] if workspace else [],
        "workspaceBudget": {"warning": workspace, "exceeded": workspace},
        "scopedBudgets": list(scoped),
        "runtimeActions": {"onBudgetExceeded": "block", **actions},
    }
    if old_server:
        del body["workspaceBudget"], body["scopedBudgets"]
    return body


def budget(dimension: str, value: str, *, exceeded: bool = True, period_end: str = LATER) -> dict[str, Any]:
    return {
        "dimension": dimension,
        "value": value,
        "window": "daily",
        "warning": True,
        "exceeded": exceeded,
        "periodEnd": period_end,
    }


@pytest.fixture
def om(server: Opsmeterd) -> Iterator[Opsmeter]:
    client = Opsmeter("om_live_x_y", base_url=server.url, enforcement=True, policy_refresh_interval=60)
    yield client
    client.shutdown(timeout=1)


def chat(server: Opsmeterd, om: Opsmeter) -> Any:
    client = openai.OpenAI(api_key="sk-test", base_url=f"{server.url}/v1", max_retries=0)
    return om.wrap_openai(client).chat.completions.create


def goes_through(server: Opsmeterd, create: Any, **kwargs: Any) -> bool:
    """Whether the call reached the provider (True) or was blocked before it (False)."""
    before = len(server.provider_models)
    try:
        reply = create(messages=MESSAGES, **{"model": "gpt-4o", **kwargs})
    except BudgetExceededError:
        assert len(server.provider_models) == before, "a blocked call reached the provider"
        return False
    assert reply.choices[0].message.content == "ok"
    assert len(server.provider_models) == before + 1
    return True


def test_a_user_budget_exceeded_blocks_that_users_calls_only(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy(budget("userId", "u_42"))
    create = chat(server, om)
    with pytest.raises(BudgetExceededError) as raised:
        create(model="gpt-4o", messages=MESSAGES, opsmeter_user_id="u_42", opsmeter_endpoint_tag="scoped.user")
    assert len(server.provider_models) == 0
    error = raised.value
    assert (error.action, error.budget, error.budget_value, error.window) == ("block", "userId", "u_42", "daily")
    assert "budget exceeded (userId u_42, daily)" in str(error)
    assert goes_through(server, create, opsmeter_user_id="u_7")
    assert goes_through(server, create)  # no user: the gateway's "unknown"
    with om.attribution(user_id="u_42"):  # the user of an attribution block counts as the call's own
        assert not goes_through(server, create)
    assert om.flush(timeout=5)
    [blocked] = [e for e in server.events if e.get("endpointTag") == "scoped.user"]
    assert (blocked["userId"], blocked["status"], blocked["errorCode"]) == ("u_42", "error", "budget_blocked")
    assert blocked["metadata"]["opsmeterActionDetail"] == "budget exceeded (userId u_42, daily)"


def test_an_endpoint_budget_exceeded_blocks_that_endpoints_calls_only(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy(budget("endpointTag", "checkout.ai_summary"))
    create = chat(server, om)
    assert not goes_through(server, create, opsmeter_endpoint_tag="checkout.ai_summary")
    with om.attribution(endpoint_tag="checkout.ai_summary"):
        assert not goes_through(server, create)
    assert goes_through(server, create, opsmeter_endpoint_tag="search.rank")
    assert goes_through(server, create)


def test_a_model_budget_exceeded_blocks_that_models_calls_dated_or_not(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy(budget("model", "gpt-4o"))
    create = chat(server, om)
    for model in ("gpt-4o", "gpt-4o-2024-08-06", "openai/GPT-4o"):
        assert not goes_through(server, create, model=model), model
    assert goes_through(server, create, model="gpt-4o-mini")
    assert goes_through(server, create, model="gpt-4o-mini-2024-07-18")
    assert server.provider_models == ["gpt-4o-mini", "gpt-4o-mini-2024-07-18"]


def test_a_model_budget_names_a_model_as_the_gateway_does_from_its_first_recorded_call(
    server: Opsmeterd, om: Opsmeter
) -> None:
    """An alias the local rule cannot map: its first call goes through. The provider answers it as a dated id, and
    the gateway's answer to that record names it as the budget does: from then on its calls are blocked."""
    server.policy = policy(budget("model", "claude-x-alias-target"))
    server.answered_as = {"claude-x-latest": "claude-x-20991231"}
    server.model_normalized = {"claude-x-20991231": "claude-x-alias-target"}
    create = chat(server, om)
    assert goes_through(server, create, model="claude-x-latest")
    assert om.flush(timeout=5)
    with pytest.raises(BudgetExceededError) as raised:
        create(model="claude-x-latest", messages=MESSAGES)
    assert (raised.value.budget, raised.value.budget_value) == ("model", "claude-x-alias-target")
    assert not goes_through(server, create, model="claude-x-20991231")  # the model the record was sent with
    assert goes_through(server, create, model="gpt-4o")
    assert server.provider_models == ["claude-x-latest", "gpt-4o"]


def test_the_gateways_name_for_a_model_overrides_the_local_rule(server: Opsmeterd, om: Opsmeter) -> None:
    """The local rule strips any 8-digit suffix; the gateway keeps one its catalog does not know. The blocked call's
    record is answered so: from then on that model is not the budget's."""
    server.policy = policy(budget("model", "gpt-4o"))
    server.model_normalized = {"gpt-4o-12345678": "gpt-4o-12345678"}
    create = chat(server, om)
    assert not goes_through(server, create, model="gpt-4o-12345678")
    assert om.flush(timeout=5)
    assert goes_through(server, create, model="gpt-4o-12345678")
    assert not goes_through(server, create, model="gpt-4o")
    assert server.provider_models == ["gpt-4o-12345678"]


def test_the_workspace_budget_exceeded_blocks_every_call(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy(budget("userId", "u_42", exceeded=False), workspace=True)
    create = chat(server, om)
    with pytest.raises(BudgetExceededError) as raised:
        create(model="gpt-4o-mini", messages=MESSAGES, opsmeter_user_id="u_7")
    assert (raised.value.budget, raised.value.budget_value) == ("workspace", None)
    assert "budget exceeded (workspace)" in str(raised.value)
    assert not goes_through(server, create, opsmeter_endpoint_tag="search.rank", opsmeter_user_id="u_42")
    assert server.provider_models == []


def test_an_old_server_answer_blocks_every_call_as_before(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy(budget("userId", "u_42"), old_server=True)
    create = chat(server, om)
    with pytest.raises(BudgetExceededError) as raised:
        create(model="gpt-4o-mini", messages=MESSAGES, opsmeter_user_id="u_7")
    assert raised.value.budget is None
    assert not goes_through(server, create, opsmeter_user_id="u_42")
    assert server.provider_models == []


def test_the_block_lifts_when_the_scoped_budgets_window_ends(server: Opsmeterd, om: Opsmeter) -> None:
    soon = (datetime.now(timezone.utc) + timedelta(milliseconds=400)).isoformat()
    server.policy = policy(budget("userId", "u_42", period_end=soon))
    create = chat(server, om)
    assert not goes_through(server, create, opsmeter_user_id="u_42")
    time.sleep(0.5)  # its window ends; Opsmeter is not asked again (a long refresh interval)
    assert goes_through(server, create, opsmeter_user_id="u_42")
    assert server.policy_gets == 1


def test_an_async_call_is_blocked_only_for_its_own_user(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy(budget("userId", "u_42"))
    client = om.wrap_openai(openai.AsyncOpenAI(api_key="sk-test", base_url=f"{server.url}/v1", max_retries=0))
    create: Any = client.chat.completions.create  # the opsmeter_* keywords are the wrapper's

    async def calls() -> None:
        with pytest.raises(BudgetExceededError):
            await create(model="gpt-4o", messages=MESSAGES, opsmeter_user_id="u_42")
        await create(model="gpt-4o", messages=MESSAGES, opsmeter_user_id="u_7")

    asyncio.run(calls())
    assert server.provider_models == ["gpt-4o"]


def test_a_queue_that_times_out_names_the_scoped_budget(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy(budget("userId", "u_42"), onBudgetExceeded="queue", queueMaxWaitSeconds=0.3)
    create = chat(server, om)
    started = time.monotonic()
    with pytest.raises(BudgetExceededError) as raised:
        create(model="gpt-4o", messages=MESSAGES, opsmeter_user_id="u_42")
    assert 0.3 <= time.monotonic() - started < 3
    assert (raised.value.action, raised.value.budget, raised.value.budget_value) == ("queue", "userId", "u_42")
    assert "budget exceeded (userId u_42, daily)" in str(raised.value)
    started = time.monotonic()
    assert goes_through(server, create, opsmeter_user_id="u_7")  # another user does not wait
    assert time.monotonic() - started < 0.3


def test_with_scoped_budgets_an_ingest_answers_flags_ask_for_the_policy_early(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy(budget("userId", "u_42", exceeded=False))
    server.ingest_flags = {"budgetWarning": True, "budgetExceeded": False, "policyMode": "enforce"}  # as the policy
    create = chat(server, om)
    assert goes_through(server, create, opsmeter_user_id="u_42")
    assert om.flush(timeout=5)
    time.sleep(1.2)  # sender rounds: ingest answers that agree with the snapshot do not ask for the policy
    assert server.policy_gets == 1
    # u_42 goes over: ingest answers now say "a budget is exceeded", which cannot say whose
    server.policy = policy(budget("userId", "u_42"))
    server.ingest_flags = {"budgetWarning": True, "budgetExceeded": True, "policyMode": "enforce"}
    assert goes_through(server, create, opsmeter_user_id="u_7")
    assert om.flush(timeout=5)
    assert om.flags.budget_exceeded
    assert goes_through(server, create, opsmeter_user_id="u_7"), "the ingest flags are not the workspace's"
    # The sender asks early, not at the 60 s refresh; the answer counts once the SDK has read it, a moment after
    # the server saw the request.
    deadline = time.monotonic() + 5
    while goes_through(server, create, opsmeter_user_id="u_42"):
        assert time.monotonic() < deadline, "the policy was not asked for again early"
        time.sleep(0.05)
    assert server.policy_gets >= 2
    assert goes_through(server, create, opsmeter_user_id="u_7")


def test_without_scoped_budgets_an_ingest_answers_flags_are_the_workspaces(server: Opsmeterd, om: Opsmeter) -> None:
    server.policy = policy()
    create = chat(server, om)
    assert goes_through(server, create, opsmeter_user_id="u_7")
    server.ingest_flags = {"budgetWarning": True, "budgetExceeded": True, "policyMode": "enforce"}
    assert goes_through(server, create, opsmeter_user_id="u_7")
    assert om.flush(timeout=5)
    with pytest.raises(BudgetExceededError) as raised:
        create(model="gpt-4o", messages=MESSAGES, opsmeter_user_id="u_7")
    assert raised.value.budget == "workspace"
    assert server.policy_gets == 1


def test_the_policy_is_fetched_through_the_clients_own_transport(server: Opsmeterd) -> None:
    """A transport given to Opsmeter (a proxy, a test double) carries every policy request, the sender's and
    one made on the caller's thread (the first wrapped call, or ``policy.refresh()``), not only ingest."""
    asked: list[str] = []

    def opsmeter(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/runtime/policy":
            asked.append(threading.current_thread().name)
            return httpx.Response(200, json=policy(budget("userId", "u_42")))
        return httpx.Response(207, json={"accepted": 0, "rejected": 0, "results": []})

    om = Opsmeter(
        "om_live_x_y",
        base_url="http://opsmeter.invalid",
        transport=httpx.MockTransport(opsmeter),
        enforcement=True,
        policy_refresh_interval=60,
    )
    try:
        snapshot = om.policy.refresh()
        assert snapshot is not None
        assert snapshot.scoped_budgets[0].value == "u_42"
        assert threading.current_thread().name in asked
        create = chat(server, om)
        assert not goes_through(server, create, opsmeter_user_id="u_42")
        assert goes_through(server, create, opsmeter_user_id="u_7")
    finally:
        om.shutdown(timeout=1)
