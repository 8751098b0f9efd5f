"""The records built in C (``domain._RECORDS``) are exactly the models pydantic validates, or declined."""

import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from opsmeter_ingest import domain
from opsmeter_ingest.domain import IngestRequest
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from opsmeter_wire import Records

ALIASES = sorted(domain._FIELD_NAMES)

texts = st.one_of(
    st.text(max_size=130),
    st.text(alphabet="ab \t\x00\x1f\x7f\x85\u00a0\u2028ü漢\ud800", max_size=6),
    st.sampled_from(
        ["", " ", "a", "a b", " a", "a ", "ü", "aü", "üa", "a\u00a0", "x" * 64, "x" * 65, "x" * 128, "x" * 129]
    ),
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, 1, -1, 10_000_000, 10_000_001, 20_000_000, 3_600_000, 3_600_001]),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    st.sampled_from(
        ["success", "error", "real", "test", "demo", "prod", "staging", "dev", "Success", "2026-11-25T10:00:00Z"]
    ),
    st.just({}),
    st.just([]),
)
changes = st.dictionaries(st.sampled_from([*ALIASES, "unknown", "prompt"]), values, max_size=4)
clean = st.from_regex(r"[!-~]([^\x00-\x1f\x7f\ud800-\udfff]{0,60}[!-~])?", fullmatch=True)
valid_changes = st.fixed_dictionaries(
    {},
    optional={
        "externalRequestId": clean,
        "endpointTag": st.none() | st.just("") | clean,
        "userId": st.none() | clean,
        "errorCode": st.none() | clean,
        "inputTokens": st.integers(0, 10_000_000),
        "totalTokens": st.none() | st.integers(0, 20_000_000),
        "reasoningTokens": st.none() | st.integers(0, 10_000_000),
        "latencyMs": st.none() | st.integers(0, 3_600_000),
        "status": st.sampled_from(["success", "error"]),
        "dataMode": st.sampled_from(["real", "test", "demo"]),
        "environment": st.sampled_from(["prod", "staging", "dev"]),
    },
)
removals = st.sets(st.sampled_from(ALIASES), max_size=2)


def pydantic_model(document: dict[str, Any]) -> IngestRequest | None:
    try:
        return IngestRequest.model_validate_json(json.dumps(document))  # json: ints beyond 64 bits too
    except ValidationError:
        return None


@given(changes=changes | valid_changes, removals=removals)
@settings(max_examples=1500, deadline=None)
def test_a_record_built_in_c_is_the_model_pydantic_validates(changes: dict[str, Any], removals: set[str]) -> None:
    document = {k: v for k, v in {**SPEC_EXAMPLE_BODY, **changes}.items() if k not in removals}
    built = domain._RECORDS.build([document])
    expected = pydantic_model(document)
    event("built in C" if built is not None else "declined")
    if built is None:
        return
    [model] = built
    assert expected is not None, f"C accepted what pydantic rejects: {document!r}"
    assert model == expected
    assert type(model) is IngestRequest
    assert model.model_fields_set == expected.model_fields_set
    assert list(vars(model)) == list(vars(expected))  # every field, in the model's order
    assert model.__pydantic_extra__ is None
    assert model.__pydantic_private__ is None


def test_the_common_record_is_built_and_frozen() -> None:
    built = domain._RECORDS.build([dict(SPEC_EXAMPLE_BODY)])
    assert built is not None
    [model] = built
    assert model == IngestRequest.model_validate(SPEC_EXAMPLE_BODY)
    assert (model.status, model.data_mode, model.total_tokens) == ("success", "real", None)
    with pytest.raises(ValidationError):
        model.provider = "x"


@pytest.mark.parametrize(
    "change",
    [
        {"inputTokens": True},  # a bool is not an int
        {"inputTokens": 812.0},
        {"inputTokens": "812"},
        {"inputTokens": -1},
        {"latencyMs": 3_600_001},
        {"provider": ""},
        {"provider": " openai"},
        {"provider": "openai\n"},
        {"model": "gpt\x00"},
        {"userId": "u\ud800"},
        {"userId": "ü"},  # declined (an end that is not ASCII), though pydantic accepts it
        {"status": "ok"},
        {"status": None},
        {"unknown": 1},
        {"timestamp": "2026-11-25T10:00:00Z"},  # a Python validator's field: pydantic's path
        {"timestamp": None},
        {"metadata": {"a": 1}},
        {"externalRequestId": "x" * 129},
    ],
)
def test_a_record_it_does_not_accept_as_it_is_is_declined(change: dict[str, Any]) -> None:
    assert domain._RECORDS.build([{**SPEC_EXAMPLE_BODY, **change}]) is None


def test_a_batch_with_one_declined_record_is_declined_whole() -> None:
    assert domain._RECORDS.build([dict(SPEC_EXAMPLE_BODY), {**SPEC_EXAMPLE_BODY, "inputTokens": "1"}]) is None
    assert domain._RECORDS.build([dict(SPEC_EXAMPLE_BODY), "not an object"]) is None
    assert domain._RECORDS.build([]) == []


def test_a_missing_required_field_is_declined() -> None:
    document = dict(SPEC_EXAMPLE_BODY)
    del document["model"]
    assert domain._RECORDS.build([document]) is None


def test_a_dict_subclass_is_declined() -> None:
    class Odd(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise AssertionError("no Python code runs")

    assert domain._RECORDS.build([Odd(SPEC_EXAMPLE_BODY)]) is None


def test_rules_are_read_from_the_model() -> None:
    rules = {
        rule[0]: rule
        for rule in (
            domain._record_rule(n, f, {"timestamp", "metadata"}) for n, f in IngestRequest.model_fields.items()
        )
    }
    assert rules["provider"][2:] == ("text", False, True, None, 1, 64, ())
    assert rules["endpointTag"][2:] == ("text", True, False, None, 0, 128, ())
    assert rules["latencyMs"][2:] == ("int", True, False, None, 0, 3_600_000, ())
    assert rules["status"][2:] == ("choice", False, False, "success", 0, 2**62, ("success", "error"))
    assert rules["timestamp"][2] == rules["metadata"][2] == "absent"


def test_a_field_it_has_no_rule_for_is_refused_at_import() -> None:
    from pydantic import BaseModel

    class Other(BaseModel):
        ratio: float

    with pytest.raises(TypeError, match="ratio"):
        domain._records(Other)


@pytest.mark.parametrize(
    "fields",
    [
        (("a", "a", "float", False, True, None, 0, 1, ()),),
        (("a", "a", "choice", False, True, None, 0, 1, (1,)),),
        (("a", "a", "text"),),
    ],
)
def test_records_refuse_a_rule_they_do_not_know(fields: tuple[Any, ...]) -> None:
    with pytest.raises((TypeError, ValueError)):
        Records(IngestRequest, fields)


def test_each_model_has_its_own_fields_set() -> None:
    built = domain._RECORDS.build([dict(SPEC_EXAMPLE_BODY), dict(SPEC_EXAMPLE_BODY)])
    assert built is not None
    first, second = built
    assert first.model_fields_set == second.model_fields_set
    assert first.model_fields_set is not second.model_fields_set  # built from the kept frozenset, not shared
    assert vars(first) is not vars(second)


@given(present=st.sets(st.sampled_from(ALIASES)))
@settings(max_examples=200, deadline=None)
def test_the_fields_set_is_the_fields_given_for_any_combination(present: set[str]) -> None:
    document = {
        k: v
        for k, v in SPEC_EXAMPLE_BODY.items()
        if k in present or k in {"externalRequestId", "provider", "model", "inputTokens", "outputTokens"}
    }
    built = domain._RECORDS.build([document])
    expected = pydantic_model(document)
    assert built is not None
    assert expected is not None
    assert built[0].model_fields_set == expected.model_fields_set
    assert built[0] == expected


def test_keys_are_found_by_their_text_whatever_the_objects() -> None:
    # A parser that reuses key objects is found by address; any other by text (after 128 are remembered).
    documents = [{"".join(list(k)): v for k, v in SPEC_EXAMPLE_BODY.items()} for _ in range(300)]
    built = domain._RECORDS.build(documents)
    assert built is not None
    assert all(model == IngestRequest.model_validate(SPEC_EXAMPLE_BODY) for model in built)
    assert domain._RECORDS.build([{**SPEC_EXAMPLE_BODY, "".join(["unk", "nown"]): 1}]) is None
    assert domain._RECORDS.build([{**SPEC_EXAMPLE_BODY, 7: 1}]) is None
