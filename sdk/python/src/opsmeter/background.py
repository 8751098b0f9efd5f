"""Background Responses calls (``responses.create(background=True)``): answered at once as ``queued``, without
usage, and finished later. Such a call is held here, by its response id, until the wrapped client sees it end
(``responses.retrieve`` / ``cancel`` answering a terminal status), and recorded then with the usage it ended with.
One registry per :class:`opsmeter.Opsmeter`, so a retrieve through any client it wrapped finishes the call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

HELD_AT_MOST = 1024
"""Background calls held at once; past that the oldest is recorded at once, without its usage."""

TERMINAL = frozenset({"completed", "failed", "incomplete", "cancelled"})
"""A Responses status after which the response changes no more."""

Finish = Callable[[Any], None]
"""Records a held call: from the terminal response, or from None when it will not be seen to end."""


class BackgroundCalls:
    """Held background calls: each is recorded once, when it is seen to end, or unfinished at shutdown."""

    def __init__(self) -> None:
        self._held: dict[str, Finish] = {}
        self._lock = threading.Lock()

    def _after_fork(self) -> None:
        """In a forked child: the parent's calls stay the parent's to record (they would count twice)."""
        self._lock = threading.Lock()
        self._held = {}

    def hold(self, response_id: str, finish: Finish) -> None:
        """Hold a call until its response is seen to end; one it replaces (the same id), or the oldest past
        :data:`HELD_AT_MOST`, is recorded unfinished at once: never dropped silently."""
        with self._lock:
            unfinished = [self._held.pop(response_id)] if response_id in self._held else []
            self._held[response_id] = finish
            while len(self._held) > HELD_AT_MOST:
                unfinished.append(self._held.pop(next(iter(self._held))))
        for dropped in unfinished:
            dropped(None)

    def seen(self, response: Any) -> None:
        """A response the caller got back: finishes its held call if it has ended."""
        response_id, status = getattr(response, "id", None), getattr(response, "status", None)
        if not isinstance(response_id, str) or status not in TERMINAL:
            return
        with self._lock:
            finish = self._held.pop(response_id, None)
        if finish is not None:
            finish(response)

    def finish_all(self) -> None:
        """Shutdown: every call still held is recorded without the usage it has not been seen to end with."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        for finish in held:
            finish(None)

    def __len__(self) -> int:
        return len(self._held)
