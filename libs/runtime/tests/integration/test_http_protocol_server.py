"""uvicorn with the coalescing protocol (ADR 48) keeps HTTP/1.1 as uvicorn serves it: a real server, raw sockets."""

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from opsmeter_runtime.http_protocol import CoalescingHttpToolsProtocol


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    path = scope["path"]
    if path == "/fail":
        raise RuntimeError("the app failed")
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    reply = b"echo:" + body
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(reply))]})
    await send({"type": "http.response.body", "body": reply})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free,
        http=CoalescingHttpToolsProtocol,
        lifespan="off",
        log_config=None,
        timeout_graceful_shutdown=1,  # a test that fails with a connection open must not hang the run
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield free
    server.should_exit = True
    await serving


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response with a Content-Length: its head and its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    return head, await reader.readexactly(length)


async def test_keep_alive_and_pipelined_requests_get_their_answers_in_order(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/", b"first"))
    assert (await read_response(reader))[1] == b"echo:first"
    writer.write(post("/", b"second") + post("/", b"third"))  # pipelined: one write, two requests
    heads_and_bodies = [await read_response(reader), await read_response(reader)]
    assert [body for _, body in heads_and_bodies] == [b"echo:second", b"echo:third"]
    assert all(head.startswith(b"HTTP/1.1 200 OK\r\n") for head, _ in heads_and_bodies)
    writer.close()


async def test_expect_100_continue_is_answered_before_the_body_is_sent(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/", b"", "Expect: 100-continue").replace(b"Content-Length: 0", b"Content-Length: 4"))
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"late")
    assert (await read_response(reader))[1] == b"echo:late"
    writer.close()


async def test_a_streamed_answer_arrives_whole_and_a_failing_app_gets_a_500(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post("/stream", b""))
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    assert await reader.readuntil(b"0\r\n\r\n") == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
    writer.write(post("/fail", b""))
    head, body = await read_response(reader)
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert body == b"Internal Server Error"
    writer.close()
