"""The ingest hot path's encoders, in C (``_wire.c``): event ids and event JSON without Python objects between.

:class:`Encoder` is made once per request from the parts of the JSON that every event of the request
shares and from a layout of the fields to copy (which the gateway's domain module declares); each
:meth:`Encoder.encode` then writes one event: its UUIDv5 id (SHA-1 over a prefix hashed once) and its
JSON, in one buffer. :class:`Answers` writes accepted answers the same way, and :func:`micro_usd` is the
exact decimal text of integer micro-USD. :class:`Records` builds pydantic models of parsed records
whose fields meet simple rules (and declines any other record). :func:`command` packs one Redis command (RESP) and
:func:`key_ends` counts the keys of a JSON text for the gateway's duplicate-key check. Strings are
escaped as JSON requires (quotes, backslashes, control characters); non-ASCII text is written as UTF-8.
"""

from opsmeter_wire._wire import Answers, Encoder, Records, command, key_ends, micro_usd

KINDS = ("str", "lower", "or_unknown", "or_null", "int_or_null", "int_or_zero", "object", "sum")
"""How a field's value is written: ``str`` as it is; ``lower`` lower-cased; ``or_unknown`` / ``or_null``
``"unknown"`` / ``null`` for None or ""; ``int_or_null`` / ``int_or_zero`` an int, None as null / 0;
``object`` a dict of scalars (None as ``{}``); ``sum`` the sum of two other fields' ints."""

__all__ = ["KINDS", "Answers", "Encoder", "Records", "command", "key_ends", "micro_usd"]
