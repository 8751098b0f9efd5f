"""The C encoders write what orjson and uuid write for the same values, for any text."""

import json
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmeter_wire import KINDS, Answers, Encoder, command, key_ends, micro_usd

NAMESPACE = uuid.UUID("6f1c1d52-5d0e-4d7c-9a5e-6f70736d6574")
PARTS = (b'{"id":"', b'","at":"', b'","in":"', b'","fields":{', b',"cost":')
LAYOUT = (
    (b'"name":', "name", "str"),
    (b',"provider":', "provider", "lower"),
    (b',"tag":', "tag", "or_unknown"),
    (b',"version":', "version", "or_null"),
    (b',"latency":', "latency", "int_or_null"),
    (b',"cached":', "cached", "int_or_zero"),
    (b',"total":', "total", "sum", "a", "b"),
    (b',"metadata":', "metadata", "object"),
)

# Any text a str can hold once validated (no lone surrogates): quotes, backslashes, controls, non-ASCII.
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80)
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False), text
)


def encoder(prefix: str = "ws_a\x1f") -> Encoder:
    return Encoder(NAMESPACE.bytes + prefix.encode(), PARTS, LAYOUT)


@settings(max_examples=400, deadline=None)
@given(
    name=text,
    provider=text,
    tag=st.one_of(st.none(), text),
    version=st.one_of(st.none(), text),
    latency=st.one_of(st.none(), st.integers(0, 10**12)),
    cached=st.one_of(st.none(), st.integers(0, 10**12)),
    a=st.integers(0, 10**7),
    b=st.integers(0, 10**7),
    metadata=st.one_of(st.none(), st.dictionaries(text, scalar, max_size=5)),
    external_id=text,
    at=text,
    cost=st.integers(0, 2**62),
)
def test_an_event_is_the_json_of_its_fields(
    name: str,
    provider: str,
    tag: str | None,
    version: str | None,
    latency: int | None,
    cached: int | None,
    a: int,
    b: int,
    metadata: dict[str, object] | None,
    external_id: str,
    at: str,
    cost: int,
) -> None:
    values: dict[str, object] = {
        "name": name,
        "provider": provider,
        "tag": tag,
        "version": version,
        "latency": latency,
        "cached": cached,
        "a": a,
        "b": b,
        "total": None,
        "metadata": metadata,
    }
    event_id, value = encoder().encode(values, external_id, "2026-12-01T00:00:00Z", at, cost, b',"end":true}}')
    assert event_id == str(uuid.uuid5(NAMESPACE, f"ws_a\x1f{external_id}"))
    assert json.loads(value) == {
        "id": event_id,
        "at": "2026-12-01T00:00:00Z",
        "in": at,
        "fields": {
            "name": name,
            "provider": provider.lower(),
            "tag": tag or "unknown",
            "version": version or None,
            "latency": latency,
            "cached": cached or 0,
            "total": a + b,
            "metadata": metadata or {},
            "cost": cost,
            "end": True,
        },
    }


def test_fields_in_another_order_than_the_layout_are_found_by_name() -> None:
    values: dict[str, object] = {
        "metadata": {"k": 1.5},
        "b": 2,
        "a": 1,
        "total": None,
        "cached": None,
        "latency": 7,
        "version": "",
        "tag": "",
        "provider": "OpenAI",
        "name": "n",
    }
    _, value = encoder().encode(values, "r", "t", "t", 0, b"}}")
    assert orjson.loads(value)["fields"] == {
        "name": "n",
        "provider": "openai",
        "tag": "unknown",
        "version": None,
        "latency": 7,
        "cached": 0,
        "total": 3,
        "metadata": {"k": 1.5},
        "cost": 0,
    }


def _minimal(**changes: object) -> dict[str, object]:
    """The layout's fields with plain values (missing ones as None), with ``changes`` applied."""
    values: dict[str, object] = {"name": "n", "provider": "p", "a": 1, "b": 2}
    for key in ("tag", "version", "latency", "cached", "total", "metadata"):
        values[key] = None
    return {**values, **changes}


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("name", 5, TypeError),  # not a str
        ("latency", "5", TypeError),  # a string where an int goes
        ("cached", True, TypeError),  # a bool is not an int here
        ("metadata", {"k": float("nan")}, ValueError),  # no JSON for NaN
        ("metadata", {"k": [1]}, TypeError),  # not a scalar
        ("metadata", {1: "v"}, TypeError),  # keys are strings
        ("name", "\ud800", UnicodeEncodeError),  # a lone surrogate has no UTF-8
        ("a", True, TypeError),  # a sum adds exact ints only (no subclass's __add__ runs)
    ],
)
def test_a_value_it_cannot_write_raises_and_writes_nothing(field: str, value: object, error: type[Exception]) -> None:
    values = _minimal(**{field: value})
    with pytest.raises(error):
        encoder().encode(values, "r", "t", "t", 0, b"}}")


class _Shouting(str):
    def lower(self) -> str:
        return "not what str.lower gives"


def test_no_subclass_method_runs_while_writing() -> None:
    values = _minimal(provider=_Shouting("ÄBC"))
    _, value = encoder().encode(values, "r", "t", "t", 0, b"}}")
    assert orjson.loads(value)["fields"]["provider"] == "äbc"


def test_a_missing_field_raises_key_error() -> None:
    with pytest.raises(KeyError, match="provider"):
        encoder().encode({"name": "n"}, "r", "t", "t", 0, b"}}")


def test_every_kind_it_documents_is_accepted() -> None:
    for kind in KINDS:
        extra = ("a", "b") if kind == "sum" else ()
        Encoder(b"", PARTS, ((b'"x":', "x", kind, *extra),))


def test_a_layout_it_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        Encoder(b"", PARTS, ((b'"x":', "x", "float"),))
    with pytest.raises(TypeError, match="sum"):
        Encoder(b"", PARTS, ((b'"x":', "x", "sum"),))
    with pytest.raises(ValueError, match="five"):
        Encoder(b"", PARTS[:4], ())  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(workspace=text, external_id=text)
def test_event_ids_are_uuid5(workspace: str, external_id: str) -> None:
    assert encoder(f"{workspace}\x1f").event_id(external_id) == str(
        uuid.uuid5(NAMESPACE, f"{workspace}\x1f{external_id}")
    )


def micro_usd_reference(micro: int) -> str:
    sign, micro = ("-", -micro) if micro < 0 else ("", micro)
    whole, fraction = divmod(micro, 1_000_000)
    return sign + (f"{whole}.{fraction:06d}".rstrip("0") if fraction else str(whole))


@given(st.integers(-(2**62), 2**62))
def test_micro_usd_is_the_exact_decimal(micro: int) -> None:
    assert micro_usd(micro) == micro_usd_reference(micro)


def test_micro_usd_examples() -> None:
    assert [micro_usd(m) for m in (0, 1, 1234, 220, 2_500_000, 10**12 + 5)] == [
        "0",
        "0.000001",
        "0.001234",
        "0.00022",
        "2.5",
        "1000000.000005",
    ]
    with pytest.raises(OverflowError):
        micro_usd(2**70)


@settings(max_examples=300, deadline=None)
@given(
    event_id=text,
    cost=st.integers(0, 2**62),
    quoted=st.dictionaries(text, scalar, min_size=1, max_size=3),
    flag=st.booleans(),
)
def test_an_answer_is_the_json_of_its_fields(event_id: str, cost: int, quoted: dict[str, object], flag: bool) -> None:
    answers = Answers((b'{"id":', b',"usd":"', b'","micro":', b",", b',"flag":}'))
    head = b'{"status":"ok",'
    quoted_json = json.dumps(quoted, ensure_ascii=False).encode()[1:-1]  # orjson stops at 64-bit ints
    answer, opened = answers.render(head, event_id, cost, quoted_json, flag)
    fields = {"id": event_id, "usd": micro_usd_reference(cost), "micro": cost, **quoted, "flag": flag}
    assert json.loads(answer) == fields
    assert json.loads(opened + b"}") == {"status": "ok", **fields}


def _resp(values: list[bytes | str | int]) -> bytes:
    """RESP as the protocol defines it: an array of bulk strings (text as UTF-8, ints as decimal text)."""
    encoded = [v if isinstance(v, bytes) else str(v).encode() for v in values]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%b\r\n" % (len(v), v) for v in encoded)


resp_value = st.one_of(st.binary(max_size=40), text, st.integers(-(2**63), 2**63 - 1))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(resp_value, st.lists(resp_value, max_size=6), st.tuples(resp_value, resp_value)), min_size=1))
def test_a_command_is_its_values_in_resp_lists_standing_for_their_items(args: list[Any]) -> None:
    flat: list[bytes | str | int] = []
    for arg in args:
        flat.extend(arg if isinstance(arg, list | tuple) else [arg])
    if not flat:
        with pytest.raises(ValueError, match="no arguments"):
            command(*args)
        return
    assert command(*args) == _resp(flat)


def test_a_command_of_a_script_call() -> None:
    assert command("EVALSHA", "ab", 1, ["k"], ("v", 20, b"\r\n")) == (
        b"*7\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\n20\r\n$2\r\n\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((True,), TypeError),  # a bool is not sent as 1 or "True" by accident
        ((1.5,), TypeError),
        ((None,), TypeError),
        ((2**63,), OverflowError),
        ((-(2**63) - 1,), OverflowError),
        (("\ud800",), UnicodeEncodeError),
        ((["a", ["nested"]],), TypeError),
        ((), ValueError),
    ],
)
def test_a_value_a_command_cannot_hold_raises(args: tuple[object, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        command(*args)  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=200)
    | st.lists(st.sampled_from([b'"', b":", b" ", b"\t", b"\n", b"\r", b"a", b"\\"])).map(b"".join)
)
def test_key_ends_counts_quotes_before_colons_across_whitespace(body: bytes) -> None:
    assert key_ends(body) == body.translate(None, b" \t\n\r").count(b'":')


def test_key_ends_of_a_json_object() -> None:
    assert key_ends(b'{"a" :1,\n "b"\t: {"c":"d"}, "e": "f:"}') == 4
