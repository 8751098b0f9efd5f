"""A local HTTP server for the SDK's tests: each fake says what a request gets, this serves it on 127.0.0.1.

The real provider clients and the SDK's own HTTP client talk to it over a socket, as they would to the real APIs.
A fake is either ``LocalServer(respond)`` or a subclass with its own :meth:`LocalServer.respond`; either closes at
the end of a ``with`` block.
"""

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class EventStream:
    """A ``text/event-stream`` body: ``event: <name>`` (none when the name is None, as OpenAI's chat chunks) and
    ``data: <JSON>`` (a string as it is: ``[DONE]``) for each event, in order."""

    events: list[tuple[str | None, Any]]

    def encoded(self) -> bytes:
        return b"".join(
            ("" if name is None else f"event: {name}\n").encode()
            + f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
            for name, data in self.events
        )


Answer = tuple[int, Any]
"""The status and the JSON body (None: an empty body), or an :class:`EventStream`."""

Respond = Callable[[str, str, Any], Answer]
"""What a request gets, from its method, path and JSON body (None when it has none)."""


class LocalServer:
    def __init__(self, respond: Respond | None = None) -> None:
        """Serves ``respond``, or without one the subclass's :meth:`respond` (its state set before this is called)."""
        serve = respond or self.respond

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, answer = serve(method, self.path, body)
                if isinstance(answer, EventStream):
                    data, kind = answer.encoded(), "text/event-stream"
                else:
                    data, kind = b"" if answer is None else json.dumps(answer).encode(), "application/json"
                self.send_response(status)
                if answer is not None:
                    self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def respond(self, method: str, path: str, body: Any) -> Answer:
        """What a request gets, in a subclass."""
        raise NotImplementedError

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def accepted(events: list[dict[str, Any]], model_normalized: Mapping[str, str] | None = None) -> Answer:
    """The ingest gateway's batch answer with every event accepted; an event whose model is in ``model_normalized``
    is answered with that ``modelNormalized``."""
    said = model_normalized or {}
    results = [
        {"index": index, "httpStatus": 202, **({"modelNormalized": said[e["model"]]} if e.get("model") in said else {})}
        for index, e in enumerate(events)
    ]
    return 207, {"results": results}
