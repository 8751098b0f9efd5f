import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import opsmeter_ingest.record as rules
from opsmeter_contracts import LlmRequestIngested, decode_event
from opsmeter_ingest.answer import PolicyFlags, answer_body
from opsmeter_ingest.event import EVENT_NAMESPACE, Pricing, build_event, event_uuid
from opsmeter_ingest.record import MalformedJson, PayloadRejected, parse_json_strict, validate_record
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EXAMPLE = SPEC_EXAMPLE_BODY


def validate(document: Any) -> Any:
    return validate_record(document, now=NOW, max_age=timedelta(days=7), max_skew=timedelta(minutes=5))


def rejected_fields(raw: bytes | dict[str, Any]) -> dict[str, str]:
    body = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    with pytest.raises(PayloadRejected) as caught:
        validate(parse_json_strict(body))
    return {e.field: e.message for e in caught.value.errors}


class TestStrictJson:
    def test_the_spec_example_is_valid(self) -> None:
        record = validate(parse_json_strict(json.dumps(EXAMPLE).encode()))
        assert record.request.input_tokens == 812
        assert record.occurred_at == NOW

    @pytest.mark.parametrize("body", [b"{", b"", b"nope", b'{"a": 1,}', b"\xff\xfe"])
    def test_malformed_json_is_not_a_field_error(self, body: bytes) -> None:
        with pytest.raises(MalformedJson):
            parse_json_strict(body)

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309"])
    def test_non_finite_numbers_name_their_field(self, literal: str) -> None:
        body = json.dumps(EXAMPLE).replace('"inputTokens": 812', f'"inputTokens": {literal}').encode()
        assert "inputTokens" in rejected_fields(body)

    def test_duplicate_keys_name_the_key(self) -> None:
        body = json.dumps(EXAMPLE)[:-1].encode() + b', "model": "gpt-4o"}'
        assert rejected_fields(body) == {"model": "duplicate key in JSON object"}

    def test_integers_longer_than_any_field_takes_are_out_of_range(self) -> None:
        body = json.dumps(EXAMPLE).replace('"inputTokens": 812', f'"inputTokens": {"9" * 5000}').encode()
        assert rejected_fields(body) == {"inputTokens": f"{'9' * 12}...(5000 digits) is out of range"}

    def test_a_metadata_integer_beyond_64_bits_is_out_of_range(self) -> None:
        body = json.dumps({**EXAMPLE, "metadata": {"n": 2**64}}).encode()
        assert rejected_fields(body) == {"metadata": "value of 'n' is out of range (a 64-bit integer)"}

    def test_lone_surrogates_are_refused(self) -> None:
        body = json.dumps(EXAMPLE).replace('"u_5f2c"', '"u_\\ud800"').encode()
        assert rejected_fields(body) == {"userId": "must not contain control characters or lone surrogates"}

    @pytest.mark.parametrize("value", ["a\u0000b", "tab\there", "\x7f", "end\n"])
    def test_control_characters_are_refused(self, value: str) -> None:
        assert rejected_fields({**EXAMPLE, "endpointTag": value}) == {
            "endpointTag": "must not contain control characters or lone surrogates"
        }

    @pytest.mark.parametrize("value", [" lead", "trail ", "\u00a0nbsp", "ideographic\u3000"])
    def test_whitespace_at_either_end_is_refused(self, value: str) -> None:
        assert rejected_fields({**EXAMPLE, "provider": value}) == {"provider": "must not start or end with whitespace"}

    @pytest.mark.parametrize("value", ["in between", "ünïcode 漢字", "a\u00a0b"])
    def test_inner_spaces_and_unicode_are_fine(self, value: str) -> None:
        assert validate({**EXAMPLE, "userId": value}).request.user_id == value

    def test_the_body_must_be_an_object(self) -> None:
        assert rejected_fields(b"[1, 2]") == {"body": "must be a JSON object"}


class TestFieldRules:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("inputTokens", "812"),
            ("inputTokens", 812.0),
            ("inputTokens", True),
            ("inputTokens", -1),
            ("inputTokens", 10_000_001),
            ("outputTokens", None),
            ("latencyMs", 3_600_001),
            ("provider", ""),
            ("provider", "x" * 65),
            ("model", "m" * 129),
            ("externalRequestId", ""),
            ("externalRequestId", "r" * 129),
            ("endpointTag", "e" * 129),
            ("promptVersion", "p" * 65),
            ("userId", 42),
            ("status", "ok"),
            ("dataMode", "prod"),
            ("environment", "production"),
            ("errorCode", "e" * 65),
            ("timestamp", "2026-11-25T12:00:00"),
            ("timestamp", "yesterday"),
            ("timestamp", "2026-11-17T11:59:59Z"),
            ("timestamp", "2026-11-25T12:05:01Z"),
            ("metadata", {"k": {"nested": 1}}),
            ("metadata", {f"k{i}": i for i in range(21)}),
            ("metadata", {"big": "x" * 5000}),
            ("metadata", "not an object"),
            ("cacheWrite1hInputTokens", -1),
            ("cacheWrite1hInputTokens", "5"),
            ("cacheWrite1hInputTokens", 10_000_001),
        ],
    )
    def test_each_rule_names_its_field(self, field: str, value: Any) -> None:
        assert field in rejected_fields({**EXAMPLE, field: value})

    @pytest.mark.parametrize("missing", ["externalRequestId", "provider", "model", "inputTokens", "outputTokens"])
    def test_required_fields(self, missing: str) -> None:
        document = {k: v for k, v in EXAMPLE.items() if k != missing}
        assert rejected_fields(document) == {missing: "is required"}

    def test_unknown_fields_are_refused(self) -> None:
        assert rejected_fields({**EXAMPLE, "costUsd": 1}) == {"costUsd": "unknown field"}

    def test_total_tokens_must_add_up(self) -> None:
        assert "totalTokens" in rejected_fields({**EXAMPLE, "totalTokens": 1})
        assert validate({**EXAMPLE, "totalTokens": 976}).request.total_tokens == 976

    def test_cached_tokens_cannot_exceed_input(self) -> None:
        assert "cachedInputTokens" in rejected_fields({**EXAMPLE, "cachedInputTokens": 813})

    def test_1h_cache_writes_are_part_of_cache_writes(self) -> None:
        message = "must not exceed cacheWriteInputTokens (1-hour cache writes are part of it)"
        too_many = {**EXAMPLE, "cacheWriteInputTokens": 100, "cacheWrite1hInputTokens": 101}
        assert rejected_fields(too_many) == {"cacheWrite1hInputTokens": message}
        assert rejected_fields({**EXAMPLE, "cacheWrite1hInputTokens": 1}) == {"cacheWrite1hInputTokens": message}
        record = validate({**EXAMPLE, "cacheWriteInputTokens": 100, "cacheWrite1hInputTokens": 100})
        assert record.request.cache_write_1h_input_tokens == 100
        assert validate(EXAMPLE).request.cache_write_1h_input_tokens is None
        assert rejected_fields({**EXAMPLE, "cacheWrite1HInputTokens": 1}) == {
            "cacheWrite1HInputTokens": "unknown field"
        }

    def test_every_bad_field_is_reported_at_once(self) -> None:
        errors = rejected_fields({**EXAMPLE, "inputTokens": "1", "status": "x", "extra": 1})
        assert set(errors) == {"inputTokens", "status", "extra"}

    def test_timestamp_with_offset_becomes_utc(self) -> None:
        record = validate({**EXAMPLE, "timestamp": "2026-11-25T13:30:00+02:00"})
        assert record.occurred_at == datetime(2026, 11, 25, 11, 30, tzinfo=UTC)


class TestContentIsNeverStored:
    @pytest.mark.parametrize(
        "key",
        ["prompt", "Prompt ", "prompt\u200b", "\uff50\uff52\uff4f\uff4d\uff50\uff54", "system_prompt", "systemPrompt",
         "input", "OUTPUT", "content", "text", "response", "completions", "messages", " messages\ufeff"],
    )  # fmt: skip
    def test_look_alike_content_keys_are_content(self, key: str) -> None:
        assert rules.content_key(key)

    @pytest.mark.parametrize("key", ["tenantId", "inputTokens", "prompt_version", "textLength", "feature"])
    def test_other_keys_are_kept(self, key: str) -> None:
        assert not rules.content_key(key)

    def test_prompts_and_completions_are_dropped_with_a_warning(self) -> None:
        record = validate(
            {**EXAMPLE, "prompt": "secret", "messages": [], "metadata": {"completion": "x", "tenantId": "t1"}}
        )
        assert record.request.metadata == {"tenantId": "t1"}
        assert "secret" not in repr(record)
        assert len(record.warnings) == 3


class TestEvent:
    @staticmethod
    def decoded(document: dict[str, Any]) -> LlmRequestIngested:
        event = build_event(
            validate(document),
            workspace_id="ws_abcdefgh12",
            api_key_id="k1",
            pricing=Pricing("gpt-4o-mini", True, 220, "v1", (), "openai/gpt-4o-mini", None),
            now=NOW,
        )
        decoded = decode_event(event.value)  # the contract model validates every field on the way in
        assert isinstance(decoded, LlmRequestIngested)
        assert (str(decoded.event_id), decoded.key) == (event.event_id, event.key)
        return decoded

    def test_defaults_group_missing_attribution_as_unknown(self) -> None:
        event = self.decoded({k: v for k, v in EXAMPLE.items() if k not in ("endpointTag", "userId")})
        assert (event.payload.endpoint_tag, event.payload.user_id) == ("unknown", "unknown")
        assert event.payload.total_tokens == 976
        assert event.payload.data_mode == "real"

    @pytest.mark.parametrize(
        ("reported", "micro"), [("0.0005", 500), ("1.2345675", 1_234_568), ("0.0000004", 0), ("12", 12_000_000)]
    )
    def test_a_reported_cost_is_kept_in_micro_usd_half_up(self, reported: str, micro: int) -> None:
        event = self.decoded({**EXAMPLE, "reportedCostUsd": reported})
        assert (event.payload.reported_cost_micro_usd, event.payload.cost_micro_usd) == (micro, 220)

    @pytest.mark.parametrize("reported", ["-1", "1e-3", "0.1234567890123", " 1", "1.", 0.5])
    def test_a_reported_cost_must_be_a_decimal_string(self, reported: Any) -> None:
        with pytest.raises(rules.PayloadRejected) as rejected:
            validate({**EXAMPLE, "reportedCostUsd": reported})
        assert [e.field for e in rejected.value.errors] == ["reportedCostUsd"]

    def test_the_encoded_event_is_the_contract_event(self) -> None:
        event = self.decoded({**EXAMPLE, "metadata": {"tenantId": "t1"}, "timestamp": "2026-11-25T13:30:00+02:00"})
        assert event.occurred_at == datetime(2026, 11, 25, 11, 30, tzinfo=UTC)
        assert event.ingested_at == NOW
        assert event.workspace_id == "ws_abcdefgh12"
        assert event.payload.model_dump() == {
            "external_request_id": EXAMPLE["externalRequestId"],
            "provider": "openai",
            "model": "gpt-4o-mini",
            "model_normalized": "gpt-4o-mini",
            "endpoint_tag": "checkout.ai_summary",
            "prompt_version": "v12",
            "user_id": "u_5f2c",
            "input_tokens": 812,
            "output_tokens": 164,
            "total_tokens": 976,
            "cached_input_tokens": 0,
            "cache_write_input_tokens": 0,
            "cache_write_1h_input_tokens": 0,
            "reasoning_tokens": 0,
            "latency_ms": 930,
            "status": "success",
            "error_code": None,
            "data_mode": "real",
            "environment": "prod",
            "metadata": {"tenantId": "t1"},
            "cost_micro_usd": 220,
            "priced": True,
            "price_catalog_version": "v1",
            "price_row": "openai/gpt-4o-mini",
            "reported_cost_micro_usd": None,
            "price_tier_start_tokens": None,
            "api_key_id": "k1",
        }

    def test_1h_cache_writes_reach_the_event(self) -> None:
        event = self.decoded({**EXAMPLE, "cacheWriteInputTokens": 300, "cacheWrite1hInputTokens": 200})
        assert (event.payload.cache_write_input_tokens, event.payload.cache_write_1h_input_tokens) == (300, 200)

    def test_the_same_call_is_the_same_event(self) -> None:
        assert event_uuid("ws_a", "r1") == event_uuid("ws_a", "r1")
        assert event_uuid("ws_a", "r1") != event_uuid("ws_b", "r1")

    def test_the_event_id_is_the_uuid5_of_workspace_and_request(self) -> None:
        for workspace, request in [("ws_a", "r1"), ("ws_abcdefgh12", "ü-ñ-\u4e2d"), ("ws_b", "x" * 128)]:
            expected = uuid.uuid5(EVENT_NAMESPACE, f"{workspace}\x1f{request}")
            assert event_uuid(workspace, request) == expected


class TestAnswer:
    def test_every_status_field_is_present_and_aliases_agree(self) -> None:
        body = answer_body(status="accepted", reason=None, flags=PolicyFlags(budget_warning=True))
        for key in (
            "status", "reason", "telemetryPaused", "providerCallsContinue", "isPlanLimitReached", "budgetWarning",
            "budgetExceeded", "isBudgetWarning", "isBudgetExceeded", "policyMode", "warnings",
        ):  # fmt: skip
            assert key in body
        assert body["providerCallsContinue"] is True
        assert body["isBudgetWarning"] is body["budgetWarning"] is True


class TestErrorsTogether:
    def test_a_non_finite_number_and_other_broken_fields_are_reported_together(self) -> None:
        body = json.dumps({**EXAMPLE, "status": "nope"}).replace('"inputTokens": 812', '"inputTokens": NaN')
        assert set(rejected_fields(body.encode())) == {"inputTokens", "status"}


class TestFastPathAgrees:
    """The one-step validation of common documents accepts exactly what the field-by-field one does."""

    values = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-5, max_value=30_000_000),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=140),
        st.sampled_from(["openai", "gpt-4o-mini", " x", "a\x00b", "real", "demo", "2026-11-25T12:00:00Z"]),
    )
    keys = st.sampled_from([*sorted(rules._FIELD_NAMES), "prompt", "Messages", "unknownField"])
    metadata = st.dictionaries(st.sampled_from(["tenantId", "completion", "k", ""]), values, max_size=3)

    @given(
        overrides=st.dictionaries(keys, st.one_of(values, metadata), max_size=6),
        dropped=st.sets(st.sampled_from(sorted(SPEC_EXAMPLE_BODY)), max_size=3),
    )
    @settings(max_examples=400, deadline=None)
    def test_same_answer(self, overrides: dict[str, Any], dropped: set[str]) -> None:
        document = {k: v for k, v in {**EXAMPLE, **overrides}.items() if k not in dropped}
        fast = rules._request_fast(document)
        try:
            slow: Any = rules._request(document)
        except PayloadRejected:
            slow = None
        if fast is not None:
            assert fast == slow
        if slow is not None and slow[1] == ():  # accepted with nothing dropped: the one-step validation takes it too
            assert fast == slow

    @given(
        batch=st.lists(
            st.dictionaries(
                st.sampled_from([*sorted(rules._FIELD_NAMES), "prompt"]), st.one_of(values, metadata), max_size=3
            ),
            min_size=1,
            max_size=4,
        )
    )
    @settings(max_examples=200, deadline=None)
    def test_a_batch_is_validated_like_its_events_one_by_one(self, batch: list[dict[str, Any]]) -> None:
        documents = [{**EXAMPLE, **overrides} for overrides in batch]

        def one(document: dict[str, Any]) -> Any:
            try:
                return validate(document)
            except PayloadRejected as rejected:
                return rejected.errors

        together = rules.validate_records(documents, now=NOW, max_age=timedelta(days=7), max_skew=timedelta(minutes=5))
        assert [r.errors if isinstance(r, PayloadRejected) else r for r in together] == [one(d) for d in documents]


class TestFastParsingAgrees:
    """Bodies read by orjson (:func:`parse_json`) come to what the strict parser makes of them, field by field."""

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.sampled_from(["openai", "gpt-4o-mini", "a\\u0000", 'q"uote', "back\\\\slash", "\\ud800", "x:y"]),
    )
    keys = st.sampled_from([*sorted(rules._FIELD_NAMES), "prompt", "unknown", 'k"ey'])

    @staticmethod
    def obj(pairs: list[tuple[str, Any]], colon: str = ": ") -> str:
        """A JSON object from pairs, keeping repeated keys (json.dumps cannot write duplicates)."""
        return "{" + ",".join(f"{json.dumps(k)}{colon}{TestFastParsingAgrees.value(v)}" for k, v in pairs) + "}"

    @staticmethod
    def value(v: Any) -> str:
        if isinstance(v, list):  # metadata given as pairs
            return TestFastParsingAgrees.obj(v)
        return json.dumps(v)

    valid = st.lists(
        st.sampled_from(
            [
                ("totalTokens", 976),
                ("cachedInputTokens", 100),
                ("reasoningTokens", 3),
                ("errorCode", "rate_limit"),
                ("dataMode", "test"),
                ("environment", "dev"),
                ("metadata", [("tenantId", "t1"), ("n", 2), ("f", 0.5), ("b", None)]),
                ("metadata", [("big", 10**25), ("neg", -0.0), ("u", "ü漢\u00a0x")]),
            ]
        ),
        max_size=3,
        unique_by=lambda kv: kv[0],
    )
    pairs = valid | st.lists(
        st.tuples(
            keys,
            st.one_of(
                scalars, st.lists(st.tuples(st.sampled_from(["t", "completion", "n", "t"]), scalars), max_size=3)
            ),
        ),
        max_size=4,
    )

    @staticmethod
    def outcome(parse: Any, text: bytes) -> Any:
        """What the body comes to: its validated record, the field errors, or malformed JSON."""
        try:
            return validate(parse(text))
        except PayloadRejected as rejected:
            return [(e.field, e.message) for e in rejected.errors]
        except MalformedJson:
            return "malformed"

    @given(extra=pairs, colon=st.sampled_from([": ", ":", " : ", "\n\t:\r\n"]))
    @settings(max_examples=500, deadline=None)
    def test_single(self, extra: list[tuple[str, Any]], colon: str) -> None:
        text = self.obj([*EXAMPLE.items(), *extra], colon).encode()
        outcome = self.outcome(rules.parse_json, text)
        event("valid" if not isinstance(outcome, list | str) else "refused")
        assert outcome == self.outcome(parse_json_strict, text)

    @given(events=st.lists(pairs, min_size=1, max_size=3), duplicate_events=st.booleans())
    @settings(max_examples=300, deadline=None)
    def test_batch(self, events: list[list[tuple[str, Any]]], duplicate_events: bool) -> None:
        bodies = [self.obj([*EXAMPLE.items(), *extra]) for extra in events]
        text = ("{" + ('"events": [], ' if duplicate_events else "") + '"events": [' + ",".join(bodies) + "]}").encode()

        def outcomes(parse: Any) -> Any:
            try:
                documents = parse(text)["events"]
            except PayloadRejected as rejected:
                return [(e.field, e.message) for e in rejected.errors]
            return [self.outcome(lambda document: document, d) for d in documents]

        assert outcomes(rules.parse_json) == outcomes(parse_json_strict)
