"""Every event class registers itself here by ``type`` and ``version``; decoding looks it up."""

from typing import Any, TypeVar

from opsmeter_contracts.envelope import EventEnvelope

EventT = TypeVar("EventT", bound=type[EventEnvelope[Any]])

_EVENTS: dict[str, dict[int, type[EventEnvelope[Any]]]] = {}


def event(cls: EventT) -> EventT:
    """Class decorator: register an event class under its literal ``type`` and ``version``."""
    fields = cls.__pydantic_fields__
    event_type = fields["type"].default
    version = fields["version"].default
    if not isinstance(event_type, str) or not isinstance(version, int):
        raise TypeError(f"{cls.__name__} must pin 'type' and 'version' with Literal defaults")
    versions = _EVENTS.setdefault(event_type, {})
    if version in versions and versions[version] is not cls:
        raise TypeError(f"{event_type} v{version} is registered twice")
    versions[version] = cls
    return cls


def latest_version(event_type: str) -> int | None:
    versions = _EVENTS.get(event_type)
    return max(versions) if versions else None


def event_class(event_type: str, version: int) -> type[EventEnvelope[Any]] | None:
    return _EVENTS.get(event_type, {}).get(version)


def registered() -> list[type[EventEnvelope[Any]]]:
    """Every registered class, sorted by type then version."""
    return [versions[v] for _, versions in sorted(_EVENTS.items()) for v in sorted(versions)]
