"""Attribution (endpoint tag, user id, prompt version) for every call made inside a ``with`` block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Attribution:
    endpoint_tag: str | None = None
    user_id: str | None = None
    prompt_version: str | None = None

    def merged(self, **given: str | None) -> Attribution:
        """This attribution with the given non-None values taking precedence."""
        changes = {k: v for k, v in given.items() if v is not None}
        return replace(self, **changes) if changes else self


_EMPTY = Attribution()
_current: ContextVar[Attribution] = ContextVar("opsmeter_attribution", default=_EMPTY)


def current() -> Attribution:
    return _current.get()


def resolve(
    *, endpoint_tag: str | None = None, user_id: str | None = None, prompt_version: str | None = None
) -> Attribution:
    """What a call is attributed to: the values it gives, else the enclosing ``attribution`` blocks' (None: the
    gateway's default, ``unknown``)."""
    return current().merged(endpoint_tag=endpoint_tag, user_id=user_id, prompt_version=prompt_version)


@contextlib.contextmanager
def attribution(
    *, endpoint_tag: str | None = None, user_id: str | None = None, prompt_version: str | None = None
) -> Iterator[Attribution]:
    """Calls recorded inside get these values unless a call gives its own; blocks nest."""
    token = _current.set(
        _current.get().merged(endpoint_tag=endpoint_tag, user_id=user_id, prompt_version=prompt_version)
    )
    try:
        yield _current.get()
    finally:
        _current.reset(token)
