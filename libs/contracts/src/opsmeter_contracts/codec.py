"""Bytes <-> events. Old versions are upcast step by step before validation."""

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from opsmeter_contracts.envelope import EventEnvelope
from opsmeter_contracts.registry import event_class, latest_version

AnyEvent = EventEnvelope[Any]
"""Any registered event; handlers are typed on the concrete classes."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, from_version) -> function returning the payload at from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class DecodeError(ValueError):
    """A message that can never become an event: it belongs in the dead-letter topic."""


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    event_type = raw.get("type")
    version = raw.get("version")
    if not isinstance(event_type, str) or not isinstance(version, int):
        raise DecodeError("event has no string 'type' or integer 'version'")
    latest = latest_version(event_type)
    if latest is None:
        raise DecodeError(f"unknown event type {event_type!r}")
    while version < latest:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise DecodeError(f"no upcaster for {event_type} v{version}")
        raw = {**raw, "payload": step(raw.get("payload") or {}), "version": version + 1}
        version += 1
    if version > latest:
        raise DecodeError(f"{event_type} v{version} is newer than this consumer knows (v{latest})")
    return raw


def decode_event(data: bytes) -> AnyEvent:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DecodeError("event is not a JSON object")
    raw = upcast(raw)
    cls = event_class(raw["type"], raw["version"])
    if cls is None:
        raise DecodeError(f"{raw['type']} v{raw['version']} is not registered")
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise DecodeError(f"invalid event: {exc.errors(include_url=False)}") from exc


def encode_event(event: BaseModel) -> bytes:
    return event.__pydantic_serializer__.to_json(event)
