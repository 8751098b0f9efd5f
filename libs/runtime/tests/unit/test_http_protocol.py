"""The response head waits for the first body chunk (pure logic of the transport wrapper, ADR 48)."""

from typing import Any

from opsmeter_runtime.http_protocol import HeadWithBody


class Wire:
    """Stands in for an asyncio transport: records each write as one system call would send it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return f"extra {name}"


HEAD = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n"


def test_the_head_goes_out_with_the_first_body_chunk_and_later_chunks_as_they_come() -> None:
    wire = Wire()
    transport = HeadWithBody(wire)  # type: ignore[arg-type]
    transport.write(HEAD)
    assert wire.writes == []
    transport.write(b"{}")
    transport.write(b"more")
    assert wire.writes == [HEAD + b"{}", b"more"]


def test_100_continue_is_written_at_once_and_the_head_after_it_still_waits() -> None:
    wire = Wire()
    transport = HeadWithBody(wire)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert wire.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(HEAD)
    transport.write(b"{}")
    assert wire.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", HEAD + b"{}"]


def test_a_held_head_is_sent_before_the_connection_closes() -> None:
    wire = Wire()
    transport = HeadWithBody(wire)  # type: ignore[arg-type]
    transport.write(HEAD)
    transport.close()
    assert (wire.writes, wire.closed) == ([HEAD], True)
    assert transport.get_extra_info("peername") == "extra peername"  # the rest is the transport's
