"""The lifecycle every local HTTP test double shares: a threaded server on loopback, started and stopped."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LocalHttpDouble:
    """``with Double() as fake:`` serves ``handler()`` on ``fake.url`` until the block ends."""

    thread_name = "http-double"

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self.handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def serve_until_interrupted(self, announce: dict[str, Any]) -> None:
        """Serve (started) until Ctrl-C, after printing ``announce`` as one JSON line (for other processes)."""
        print(json.dumps(announce), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
