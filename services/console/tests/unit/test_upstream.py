"""The console's forward to a service that closes a kept-alive connection just as a request arrives."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from opsmeter_console.adapters.upstream import forward, upstream_client

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class ClosingService:
    """Answers the first request of its first connection, then drops that connection on the next request
    without an answer (what uvicorn's keep-alive timeout does when it fires as the request arrives); every
    later connection is answered normally."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first_connection = self.connections == 1
        answered = 0
        while head := await reader.readuntil(b"\r\n\r\n"):
            lines = head.lower().split(b"\r\n")
            length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length")), 0)
            if length:
                await reader.readexactly(length)
            self.requests.append(head.split(b" ")[0])
            if first_connection and answered == 1:
                writer.close()
                return
            writer.write(OK)
            await writer.drain()
            answered += 1

    async def _guarded(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def service() -> AsyncIterator[ClosingService]:
    svc = ClosingService()
    server = await asyncio.start_server(svc._guarded, "127.0.0.1", 0)
    svc.port = server.sockets[0].getsockname()[1]
    async with server:
        yield svc


async def _send(client: httpx.AsyncClient, service: ClosingService, method: str) -> httpx.Response:
    return await forward(client, method, f"http://127.0.0.1:{service.port}/v1/x", params="", content=b"", headers={})


async def test_a_read_on_a_connection_the_service_closed_is_answered(service: ClosingService) -> None:
    async with upstream_client(5.0) as client:
        assert (await _send(client, service, "GET")).status_code == 200
        second = await _send(client, service, "GET")
    assert second.status_code == 200
    assert second.json() == {"ok": True}
    assert service.requests == [b"GET", b"GET", b"GET"]
    assert service.connections == 2


async def test_a_write_on_a_connection_the_service_closed_is_not_sent_twice(service: ClosingService) -> None:
    async with upstream_client(5.0) as client:
        assert (await _send(client, service, "GET")).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await _send(client, service, "POST")
    assert service.requests == [b"GET", b"POST"]
