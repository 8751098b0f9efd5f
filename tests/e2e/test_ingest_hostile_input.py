"""Hostile input at the ingest gateway (issue 20, findings 5 and 6): a 4xx naming the field, never a 500,
and prompt text under look-alike keys never stored anywhere."""

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from opsmeter_cli.stack import operator_token
from opsmeter_contracts import Topics
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack

HUGE = "9" * 5000
CANARY = "CANARY-PROMPT-TEXT-0b7e"
LOOK_ALIKES = ["prompt ", "prompt\u200b", "ｐｒｏｍｐｔ", "system_prompt", "input", "Messages", "systemPrompt", "text"]


@pytest.fixture(scope="module")
def workspace(stack: RunningStack) -> dict[str, Any]:
    return stack.create_workspace()


def body(**overrides: Any) -> dict[str, Any]:
    return {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}", **overrides}


def post(stack: RunningStack, workspace: dict[str, Any], raw: bytes, path: str = "llm-request") -> httpx.Response:
    return httpx.post(
        f"{stack.url('ingest-gateway')}/v1/ingest/{path}",
        content=raw,
        headers={"X-API-Key": workspace["apiKey"], "Content-Type": "application/json"},
        timeout=30,
    )


def with_literal(field: str, literal: str, document: dict[str, Any] | None = None) -> bytes:
    """``document`` as JSON with ``field`` set to ``literal`` as written (not a Python value)."""
    marker = f"__{uuid.uuid4().hex}__"
    parts = field.split(".")
    target = document if document is not None else body()
    inner = target
    for part in parts[:-1]:
        inner = inner.setdefault(part, {})
    inner[parts[-1]] = marker
    return json.dumps(target, ensure_ascii=False).replace(f'"{marker}"', literal).encode()


class TestEveryBadInputIsA4xxNamingTheField:
    @pytest.mark.parametrize("field", ["inputTokens", "metadata.tenant", "unknownField"])
    def test_an_integer_of_5000_digits(self, stack: RunningStack, workspace: dict[str, Any], field: str) -> None:
        answer = post(stack, workspace, with_literal(field, HUGE))
        assert answer.status_code == 422, answer.text
        assert answer.json()["providerCallsContinue"] is True
        assert [e["field"] for e in answer.json()["errors"]] == [field]

    def test_an_integer_of_5000_digits_in_a_batch_event(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        event = with_literal("inputTokens", HUGE).decode()
        raw = f'{{"events": [{json.dumps(body())}, {event}]}}'.encode()
        answer = post(stack, workspace, raw, "llm-requests")
        assert answer.status_code == 207, answer.text
        results = answer.json()["results"]
        assert [r["httpStatus"] for r in results] == [202, 422]
        assert [e["field"] for e in results[1]["errors"]] == ["inputTokens"]

    def test_a_duplicated_lone_surrogate_key(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        raw = json.dumps(body())[:-1].encode() + b', "\\ud800": 1, "\\ud800": 2}'
        answer = post(stack, workspace, raw)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == "\\ud800"

    @pytest.mark.parametrize("field", ["userId", "metadata.tenant", "promptVersion"])
    def test_a_lone_surrogate_in_any_text(self, stack: RunningStack, workspace: dict[str, Any], field: str) -> None:
        answer = post(stack, workspace, with_literal(field, '"a\\udc00b"'))
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == [field]

    @pytest.mark.parametrize("field", ["inputTokens", "provider", "model", "externalRequestId"])
    def test_null_where_a_value_is_required(self, stack: RunningStack, workspace: dict[str, Any], field: str) -> None:
        answer = post(stack, workspace, with_literal(field, "null"))
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == [field]

    @pytest.mark.parametrize("moment", ["0243-04-09T07:39:54-21:05", "2201-01-01T00:00:00Z", "1969-12-31T23:59:59Z"])
    def test_a_timestamp_outside_1970_2200(self, stack: RunningStack, workspace: dict[str, Any], moment: str) -> None:
        answer = post(stack, workspace, json.dumps(body(timestamp=moment)).encode())
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == ["timestamp"]


class TestPromptTextUnderLookAlikeKeys:
    def test_is_absent_from_the_topic_and_clickhouse(self, stack: RunningStack) -> None:
        ws = stack.create_workspace()
        top_level = {key: CANARY for key in LOOK_ALIKES}
        sent = body(**top_level, metadata={**{key: CANARY for key in LOOK_ALIKES}, "tenant": "t1"})
        answer = post(stack, ws, json.dumps(sent, ensure_ascii=False).encode())
        assert answer.status_code == 202, answer.text
        assert len(answer.json()["warnings"]) == 2 * len(LOOK_ALIKES)

        values = asyncio.run(_topic_values(stack, ws["workspaceId"].encode(), sent["externalRequestId"]))
        assert all(CANARY.encode() not in value for value in values)

        rows = _raw_metadata(stack, ws, sent["externalRequestId"])
        assert [json.loads(m) for m in rows] == [{"tenant": "t1"}]


async def _topic_values(stack: RunningStack, key: bytes, external_request_id: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        Topics.TELEMETRY, bootstrap_servers=stack.engines.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while not any(external_request_id.encode() in v for v in found):
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    found.extend(r.value or b"" for r in records if r.key == key)
    finally:
        await consumer.stop()
    return found


def _raw_metadata(stack: RunningStack, ws: dict[str, Any], external_request_id: str) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.post(
            f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/sql",
            json={"sql": f"SELECT metadata FROM llm_requests_raw WHERE external_request_id = '{external_request_id}'"},
            headers={"Authorization": f"Bearer {ws['adminToken']}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        rows = answer.json()["rows"]
        if rows or time.monotonic() > deadline:
            return [row[0] for row in rows]
        time.sleep(0.2)


class TestOperatorAndSettingsInput:
    @pytest.mark.parametrize(
        ("field", "value"),
        [("monthlyRequestQuota", 10**30), ("monthlyRequestQuota", -1), ("rateLimitPerMinute", 10**7)],
    )
    def test_a_workspace_beyond_what_the_consumers_hold_is_refused(
        self, stack: RunningStack, field: str, value: int
    ) -> None:
        answer = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/admin/workspaces",
            json={"name": "big", "plan": "enterprise", field: value},
            headers={"X-Operator-Token": operator_token(stack.config)},
            timeout=30,
        )
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == [field]

    @pytest.mark.parametrize(
        ("change", "fields"),
        [
            ({"enforcement": None, "killSwitch": 0}, ["enforcement", "killSwitch"]),
            ({"killSwitch": None}, ["killSwitch"]),
        ],
    )
    def test_a_policy_change_with_null_or_a_number_for_a_boolean_is_refused(
        self, stack: RunningStack, workspace: dict[str, Any], change: dict[str, Any], fields: list[str]
    ) -> None:
        url = f"{stack.url('policy-engine')}/v1/workspaces/{workspace['workspaceId']}/policy"
        headers = {"Authorization": f"Bearer {workspace['adminToken']}"}
        before = httpx.get(url, headers=headers).json()
        answer = httpx.put(url, json=change, headers=headers)
        assert answer.status_code == 422, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == fields
        assert httpx.get(url, headers=headers).json() == before
