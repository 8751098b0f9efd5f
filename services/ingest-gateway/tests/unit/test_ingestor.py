"""The ingest use case against in-memory ports: each event's typed outcome, and what reaches the topic."""

import asyncio
from typing import Any

import pytest

from opsmeter_contracts import LlmRequestIngested, decode_event
from opsmeter_ingest.outcomes import (
    Accepted,
    BudgetStopped,
    Duplicate,
    Invalid,
    PlanLimited,
    RateLimited,
    Unavailable,
)
from opsmeter_ingest.testing import InMemoryWorld
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.projections import PolicyStatus
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY

CALLER = Principal(workspace_id="ws_abcdefgh12", credential_id="key_1", kind="api_key", role="ingest")


def body(external_request_id: str = "req_1", **fields: Any) -> dict[str, Any]:
    return {**SPEC_EXAMPLE_BODY, "externalRequestId": external_request_id, **fields}


class World(InMemoryWorld):
    async def one(self, document: Any) -> Any:
        [outcome] = (await self.ingestor.ingest(CALLER, [document])).outcomes
        return outcome


class TestIngest:
    async def test_an_accepted_event_is_the_contract_event_on_the_topic(self) -> None:
        world = World()
        outcome = await world.one(body())
        assert isinstance(outcome, Accepted)
        assert outcome.event["costMicroUsd"] == 220
        assert outcome.event["spooled"] is False
        [sent] = world.sink.published
        event = decode_event(sent.value)
        assert isinstance(event, LlmRequestIngested)
        assert str(event.event_id) == outcome.event["eventId"] == sent.event_id
        assert (event.payload.input_tokens, event.payload.cost_micro_usd, event.payload.api_key_id) == (
            812,
            220,
            "key_1",
        )

    async def test_a_repeat_is_answered_like_the_first_and_published_once(self) -> None:
        world = World()
        first = await world.one(body())
        again = await world.one(body())
        assert isinstance(first, Accepted)
        assert isinstance(again, Duplicate)
        assert again.event == {**first.event, "duplicate": True}
        assert len(world.sink.published) == 1

    async def test_an_event_in_the_spool_says_so(self) -> None:
        world = World()
        world.sink.kafka_down = True
        outcome = await world.one(body())
        assert isinstance(outcome, Accepted)
        assert outcome.event["spooled"] is True
        assert len(world.sink.spooled) == 1

    async def test_an_event_that_cannot_be_made_durable_is_503_and_its_retry_counts_as_new(self) -> None:
        world = World(quota_limit=10)
        world.sink.full = True
        assert isinstance(await world.one(body()), Unavailable)
        assert world.admission.quota_used == 0
        world.sink.full = False
        assert isinstance(await world.one(body()), Accepted)

    async def test_an_unconfirmed_event_is_503_and_keeps_its_key_until_the_producer_knows(self) -> None:
        world = World(quota_limit=10)
        world.sink.unconfirmed = asyncio.get_running_loop().create_future()
        outcome = await world.one(body())
        assert isinstance(outcome, Unavailable)
        assert "not confirmed" in outcome.message
        assert "same externalRequestId" in outcome.message
        # Not released: the broker may take it yet, so its quota unit and key stay reserved.
        assert world.admission.quota_used == 1
        assert world.admission.keys["req_1"] == "pending"

    async def test_over_the_rate_limit_is_rate_limited(self) -> None:
        world = World(rate_limit=2)
        result = await world.ingestor.ingest(CALLER, [body(f"r{i}") for i in range(3)])
        assert [type(o) for o in result.outcomes] == [Accepted, Accepted, RateLimited]
        assert result.retry_after_s is not None
        assert result.retry_after_s >= 1

    async def test_the_plan_quota_counts_real_data_only(self) -> None:
        world = World(quota_limit=1)
        assert isinstance(await world.one(body("r1")), Accepted)
        assert isinstance(await world.one(body("r2")), PlanLimited)
        assert isinstance(await world.one(body("t1", dataMode="test")), Accepted)

    async def test_hard_stop_refuses_once_the_budget_is_exceeded(self) -> None:
        world = World(policy=PolicyStatus(budget_exceeded=True, enforcement="hard_stop"))
        assert isinstance(await world.one(body()), BudgetStopped)
        assert world.sink.published == []
        assert isinstance(await world.one(body("t1", dataMode="test")), Accepted), "test data counts toward no budget"

    async def test_an_exceeded_scoped_budget_refuses_only_its_own_events_and_names_it(self) -> None:
        stopped = PolicyStatus(
            budget_exceeded=True,
            enforcement="hard_stop",
            workspace_exceeded=False,
            stopped_scopes=(("user_id", "u_heavy"), ("endpoint_tag", "search.rerank")),
        )
        world = World(policy=stopped)
        assert await world.one(body("r1", userId="u_heavy")) == BudgetStopped(("user_id", "u_heavy"))
        assert await world.one(body("r2", endpointTag="search.rerank")) == BudgetStopped(
            ("endpoint_tag", "search.rerank")
        )
        other = await world.one(body("r3", userId="u_light"))
        assert isinstance(other, Accepted)
        assert other.budget_exceeded, "the answer still says a budget is exceeded"
        assert len(world.sink.published) == 1

    async def test_a_status_written_before_scoped_stops_stops_on_any_exceeded_budget(self) -> None:
        world = World(policy=PolicyStatus(budget_exceeded=True, enforcement="hard_stop"))
        assert await world.one(body(userId="u_light")) == BudgetStopped()

    async def test_the_plan_quota_comes_before_the_hard_stop(self) -> None:
        world = World(quota_limit=0, policy=PolicyStatus(budget_exceeded=True, enforcement="hard_stop"))
        assert isinstance(await world.one(body()), PlanLimited)

    @pytest.mark.parametrize(
        ("document", "field"),
        [(body(inputTokens="812"), "inputTokens"), (body(totalTokens=1), "totalTokens"), ([], "body")],
    )
    async def test_an_invalid_event_names_its_field_and_counts_for_the_rate_limit(
        self, document: Any, field: str
    ) -> None:
        world = World()
        outcome = await world.one(document)
        assert isinstance(outcome, Invalid)
        assert [e.field for e in outcome.errors] == [field]
        assert world.admission.rate_used == 1
        assert world.sink.published == []

    async def test_refused_events_are_counted_by_reason_for_the_usage_report(self) -> None:
        world = World(rate_limit=3, quota_limit=1)
        documents = [body("a"), body("b", outputTokens=-1), body("c"), body("d")]
        outcomes = (await world.ingestor.ingest(CALLER, documents)).outcomes
        assert [type(o) for o in outcomes] == [Accepted, Invalid, PlanLimited, RateLimited]
        await world.ingestor.refuse_body(CALLER)  # a body that is not JSON, past the rate limit
        assert world.rejections.counts == {
            CALLER.workspace_id: {"invalid_payload": 1, "plan_limit_reached": 1, "rate_limited": 2}
        }

    async def test_a_batch_gets_one_outcome_per_event_in_order(self) -> None:
        world = World()
        result = await world.ingestor.ingest(CALLER, [body("a"), body("b", outputTokens=-1), body("a")])
        assert [type(o) for o in result.outcomes] == [Accepted, Invalid, Duplicate]  # "a" again: like the first
        assert len(world.sink.published) == 1

    async def test_every_field_of_the_record_reaches_the_event_by_name(self) -> None:
        world = World()
        await world.one(body(cachedInputTokens=100, cacheWriteInputTokens=50, reasoningTokens=7))
        event = decode_event(world.sink.published[0].value)
        assert isinstance(event, LlmRequestIngested)
        payload = event.payload
        assert (payload.cached_input_tokens, payload.cache_write_input_tokens, payload.reasoning_tokens) == (100, 50, 7)
