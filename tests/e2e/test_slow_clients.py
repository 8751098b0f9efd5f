"""Slow clients are cut off (issue 20, finding 8): a request's head and body must arrive within the read
timeout (10 s by default) of its first byte, on every service."""

import socket
import threading
import time

from tests.conftest import RunningStack

READ_TIMEOUT_S = 10.0


def trickle(port: int, head: bytes, then: bytes) -> float:
    """Send ``head`` at once, then ``then`` a byte every half second; the seconds until the server hung up."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for byte in then:
                sock.sendall(bytes([byte]))
                time.sleep(0.5)
                if time.monotonic() - started > 3 * READ_TIMEOUT_S:
                    break
            else:
                sock.settimeout(3 * READ_TIMEOUT_S)
                sock.recv(1)
        except OSError:
            pass
    return time.monotonic() - started


SERVICES = ["ingest-gateway", "reporting", "policy-engine", "alerting", "billing"]
SLOW_HEAD = (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n")
SLOW_BODY = (
    b"POST /v1/ingest/llm-request HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n",
    b"{" + b" " * 199,
)


def test_a_byte_every_half_second_client_is_cut_off_by_every_service(stack: RunningStack) -> None:
    seen: dict[tuple[str, str], float] = {}

    def run(service: str, kind: str, head: bytes, then: bytes) -> None:
        seen[(service, kind)] = trickle(int(stack.url(service).rsplit(":", 1)[1]), head, then)

    threads = [
        threading.Thread(target=run, args=(service, kind, head, then))
        for service in SERVICES
        for kind, (head, then) in (("head", SLOW_HEAD), ("body", SLOW_BODY))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 2 * len(SERVICES), seen
    assert all(READ_TIMEOUT_S - 1 <= took <= READ_TIMEOUT_S + 3 for took in seen.values()), seen
