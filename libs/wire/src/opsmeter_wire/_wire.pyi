from typing import Any

Field = tuple[bytes, str, str] | tuple[bytes, str, str, str, str]

class Encoder:
    """Events of one workspace: ``parts`` are the JSON before the id, before ``occurred_at``, before
    ``ingested_at``, before the payload's fields and before the cost; ``fields`` are
    ``(prefix, key, kind[, key2, key3])``. The two times are written escaped, between quotes the parts hold."""

    def __new__(
        cls, id_prefix: bytes, parts: tuple[bytes, bytes, bytes, bytes, bytes], fields: tuple[Field, ...]
    ) -> Encoder: ...
    def encode(
        self,
        values: dict[str, object],
        external_request_id: str,
        occurred_at: str,
        ingested_at: str,
        cost: int,
        tail: bytes,
        /,
    ) -> tuple[str, bytes]:
        """``(event_id, json)`` of one event; ``tail`` closes it after the cost."""
    def event_id(self, external_request_id: str, /) -> str:
        """The UUIDv5 text of SHA-1(``id_prefix`` + the id as UTF-8)."""

class Answers:
    """Accepted answers: ``parts`` are the JSON before the id, before the cost in USD, before the cost in
    micro-USD, before the quoted price fields, and the end (the flag is written before its last byte)."""

    def __new__(cls, parts: tuple[bytes, bytes, bytes, bytes, bytes]) -> Answers: ...
    def render(self, open: bytes, event_id: str, cost: int, quoted: bytes, flag: bool, /) -> tuple[bytes, bytes]:
        """``(answer, opened)``: the answer as a JSON object, and ``open`` followed by its fields (no braces)."""

def micro_usd(cost: int, /) -> str:
    """Exact decimal USD of integer micro-USD: 1234 → "0.001234", 2_500_000 → "2.5", 0 → "0"."""

Arg = bytes | str | int

def command(*args: Arg | list[Arg] | tuple[Arg, ...]) -> bytes:
    """One Redis command in RESP (an array of bulk strings): bytes as they are, str as UTF-8, int as its
    decimal text (64-bit; bool is refused); a list or tuple argument stands for its items."""

def key_ends(body: bytes, /) -> int:
    """How often a quote is followed by a colon, whitespace (space, tab, CR, LF) between them skipped."""

Rule = tuple[str, str, str, bool, bool, object, int, int, tuple[str, ...]]

class Records:
    """Instances of ``model`` built from parsed JSON objects. ``fields`` are, in the model's field order,
    ``(alias, name, kind, nullable, required, default, lo, hi, choices)``; ``kind`` is ``text`` (a length
    in [lo, hi], no control character or lone surrogate, a printable ASCII character at each end), ``int``
    (in [lo, hi], not a bool), ``choice`` (one of ``choices``) or ``absent`` (must not be given)."""

    def __new__(cls, model: type, fields: tuple[Rule, ...]) -> Records: ...
    def build(self, documents: list[Any], /) -> list[Any] | None:
        """The model of each document (a dict with only the fields' aliases as keys), or None if any
        document breaks a rule."""
