import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from pydantic import ValidationError

from opsmeter_contracts import (
    DecodeError,
    LlmRequestIngested,
    LlmRequestIngestedPayload,
    Topics,
    codec,
    decode_event,
    encode_event,
)
from opsmeter_contracts.schemas import SCHEMA_DIR, generated_schemas, render


def make_event(**payload_overrides: object) -> LlmRequestIngested:
    payload = {
        "external_request_id": "req_1",
        "provider": "openai",
        "model": "openai/gpt-4o-mini",
        "model_normalized": "gpt-4o-mini",
        "endpoint_tag": "checkout.ai_summary",
        "user_id": "u_1",
        "input_tokens": 812,
        "output_tokens": 164,
        "total_tokens": 976,
        "cost_micro_usd": 220,
        "priced": True,
        "price_catalog_version": "test",
        "api_key_id": "k1",
        **payload_overrides,
    }
    now = datetime.now(UTC)
    return LlmRequestIngested(
        event_id=uuid4(),
        occurred_at=now,
        ingested_at=now,
        workspace_id="ws_abcdefgh12",
        payload=LlmRequestIngestedPayload.model_validate(payload),
    )


class TestCodec:
    def test_round_trip_keeps_every_field(self) -> None:
        event = make_event(metadata={"tenantId": "t1"})
        assert decode_event(encode_event(event)) == event

    def test_times_become_utc(self) -> None:
        event = make_event()
        shifted = event.model_copy(update={"occurred_at": event.occurred_at.astimezone(timezone(timedelta(hours=5)))})
        decoded = decode_event(encode_event(shifted))
        assert decoded.occurred_at.utcoffset() == timedelta(0)
        assert decoded.occurred_at == event.occurred_at

    def test_money_is_an_integer_in_the_wire_format(self) -> None:
        wire = json.loads(encode_event(make_event()))
        assert wire["payload"]["cost_micro_usd"] == 220
        assert isinstance(wire["payload"]["cost_micro_usd"], int)

    def test_float_money_is_refused(self) -> None:
        with pytest.raises(ValidationError):
            make_event(cost_micro_usd=2.5)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"not json", "not JSON"),
            (b"[]", "not a JSON object"),
            (b'{"type": "nope.happened", "version": 1}', "unknown event type"),
            (b'{"type": "telemetry.llm_request_ingested", "version": 9}', "newer than this consumer"),
            (b'{"type": "telemetry.llm_request_ingested", "version": 1}', "invalid event"),
            (b'{"type": "telemetry.llm_request_ingested", "version": 0}', "no upcaster"),
        ],
    )
    def test_undecodable_messages_raise_decode_error(self, data: bytes, message: str) -> None:
        with pytest.raises(DecodeError, match=message):
            decode_event(data)

    def test_old_versions_are_upcast_step_by_step(self, monkeypatch: pytest.MonkeyPatch) -> None:
        wire = json.loads(encode_event(make_event()))
        wire["version"] = 0
        wire["payload"]["cost"] = wire["payload"].pop("cost_micro_usd")
        monkeypatch.setitem(
            codec.UPCASTERS,
            ("telemetry.llm_request_ingested", 0),
            lambda p: {**{k: v for k, v in p.items() if k != "cost"}, "cost_micro_usd": p["cost"]},
        )
        decoded = decode_event(json.dumps(wire).encode())
        assert decoded.version == 1
        assert decoded.payload.cost_micro_usd == 220


class TestLlmRequestIngested:
    def test_an_event_from_before_1h_cache_writes_decodes_with_0(self) -> None:
        event = make_event(cache_write_input_tokens=500)
        old = json.loads(encode_event(event))
        del old["payload"]["cache_write_1h_input_tokens"]
        decoded = decode_event(json.dumps(old).encode())
        assert isinstance(decoded, LlmRequestIngested)
        assert (decoded.payload.cache_write_input_tokens, decoded.payload.cache_write_1h_input_tokens) == (500, 0)

    def test_1h_cache_writes_round_trip(self) -> None:
        event = make_event(cache_write_input_tokens=500, cache_write_1h_input_tokens=300)
        decoded = decode_event(encode_event(event))
        assert isinstance(decoded, LlmRequestIngested)
        assert decoded.payload.cache_write_1h_input_tokens == 300


class TestEnvelope:
    def test_partition_key_is_the_workspace(self) -> None:
        assert make_event().key == b"ws_abcdefgh12"

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(ValidationError):
            make_event().model_validate({**make_event().model_dump(), "occurred_at": datetime(2026, 1, 1)})


class TestTopics:
    def test_dead_letter_topics_sit_beside_their_topic(self) -> None:
        assert Topics.TELEMETRY.dead_letter == "telemetry.llm-requests.dlq"


class TestSchemas:
    def test_checked_in_schemas_match_the_models(self) -> None:
        generated = generated_schemas()
        on_disk = {p.name for p in SCHEMA_DIR.glob("*.json")}
        assert on_disk == set(generated), "run `make schemas` and commit libs/contracts/schemas"
        for name, schema in generated.items():
            assert (SCHEMA_DIR / name).read_text() == render(schema), f"{name} drifted: run `make schemas`"
