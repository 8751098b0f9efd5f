"""Bytes <-> events. Old versions are upcast step by step before validation."""

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from opsmeter_contracts.events import AnyEvent

_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, from_version) -> function returning the payload at from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}

LATEST_VERSIONS: dict[str, int] = {
    "telemetry.llm_request_ingested": 1,
    "workspace.created": 1,
    "workspace.credential_issued": 1,
}


class DecodeError(ValueError):
    """A message that can never become an event: it belongs in the dead-letter topic."""


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    event_type = raw.get("type")
    version = raw.get("version")
    if not isinstance(event_type, str) or not isinstance(version, int):
        raise DecodeError("event has no string 'type' or integer 'version'")
    latest = LATEST_VERSIONS.get(event_type)
    if latest is None:
        raise DecodeError(f"unknown event type {event_type!r}")
    while version < latest:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise DecodeError(f"no upcaster for {event_type} v{version}")
        raw = {**raw, "payload": step(raw["payload"]), "version": version + 1}
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
    try:
        return _ADAPTER.validate_python(upcast(raw))
    except ValidationError as exc:
        raise DecodeError(f"invalid event: {exc.errors(include_url=False)}") from exc


def encode_event(event: BaseModel) -> bytes:
    return event.__pydantic_serializer__.to_json(event)
