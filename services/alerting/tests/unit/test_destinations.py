"""Where alerts may go: names resolved, every address checked, the checked address connected to (ADR 70)."""

import ssl
from collections.abc import Iterable
from datetime import UTC, datetime
from ipaddress import ip_address

import httpcore
import pytest
from pydantic import ValidationError

from opsmeter_alerting.adapters.channels import Channels, Message
from opsmeter_alerting.adapters.destinations import (
    CheckedNetworkBackend,
    Destinations,
    RefusedDestination,
    UnresolvedDestination,
)
from opsmeter_alerting.config import AlertingSettings
from opsmeter_alerting.domain import AlertSettings, IPAddress, WebhookChannel
from opsmeter_runtime.settings import RuntimeSettings

PUBLIC = "93.184.216.34"


class FakeDns:
    """Answers from a table that a test may change between lookups, as a rebinding DNS server does."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"{host} does not resolve")
        return [ip_address(a) for a in self.table[host]]


class RecordingStream(httpcore.AsyncMockStream):
    def __init__(self, answer: list[bytes], written: list[bytes], tls_names: list[str | None]) -> None:
        super().__init__(list(answer))
        self._written, self._tls_names = written, tls_names

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._written.append(buffer)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self._tls_names.append(server_hostname)
        return self


class RecordingBackend(httpcore.AsyncMockBackend):
    """Connects nowhere: records where a connection was asked to go, what was written and the TLS name."""

    def __init__(self, answer: bytes) -> None:
        super().__init__([answer])
        self.answer = answer
        self.connected: list[tuple[str, int]] = []
        self.written: list[bytes] = []
        self.tls_names: list[str | None] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        return RecordingStream([self.answer], self.written, self.tls_names)


NO_CONTENT = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
MESSAGE = Message(
    "al_1.webhook-1",
    {
        "alertId": "al_1",
        "workspaceId": "ws_1",
        "family": "system",
        "rule": "test",
        "scope": "workspace",
        "severity": "info",
        "title": "Opsmeter test alert",
        "lines": [],
        "createdAt": "2026-12-07T20:00:00Z",
    },
)
NOW = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)


def channels_over(backend: httpcore.AsyncNetworkBackend, destinations: Destinations) -> Channels:
    pool = httpcore.AsyncConnectionPool(network_backend=CheckedNetworkBackend(destinations, inner=backend))
    return Channels(pool, smtp_url=None, smtp_from="alerts@opsmeter.test", timeout_s=5)


class TestDestinations:
    async def test_a_name_is_refused_when_any_of_its_addresses_is_not_public(self) -> None:
        dns = FakeDns({"mixed.example.test": [PUBLIC, "10.0.0.5"], "public.example.test": [PUBLIC]})
        destinations = Destinations(resolve=dns)
        assert await destinations.addresses("public.example.test", 443) == [ip_address(PUBLIC)]
        with pytest.raises(RefusedDestination):
            await destinations.addresses("mixed.example.test", 443)

    async def test_a_literal_is_judged_without_a_lookup(self) -> None:
        dns = FakeDns({})
        with pytest.raises(RefusedDestination):
            await Destinations(resolve=dns).addresses("2852039166", 80)
        assert dns.lookups == []

    async def test_allowing_private_destinations_lets_loopback_through(self) -> None:
        destinations = Destinations(allow_private=True, resolve=FakeDns({"localhost": ["::1", "127.0.0.1"]}))
        assert await destinations.addresses("localhost", 8080) == [ip_address("::1"), ip_address("127.0.0.1")]

    async def test_a_name_that_does_not_resolve_is_unresolved(self) -> None:
        with pytest.raises(UnresolvedDestination):
            await Destinations(resolve=FakeDns({})).addresses("nowhere.example.test", 443)

    async def test_settings_name_each_refused_url_and_accept_names_that_do_not_resolve_yet(self) -> None:
        settings = AlertSettings.model_validate(
            {
                "channels": [
                    {"type": "webhook", "url": "http://10.0.0.5:8080/internal", "secret": "s" * 16},
                    {"type": "slack", "url": "http://metadata.example.test/latest/meta-data/"},
                    {"type": "webhook", "url": "https://public.example.test/hook", "secret": "s" * 16},
                    {"type": "webhook", "url": "https://later.example.test/hook", "secret": "s" * 16},
                    {"type": "webhook", "url": "http://[::ffff:127.0.0.1]:9000/", "secret": "s" * 16},
                ]
            }
        )
        dns = FakeDns({"metadata.example.test": ["169.254.169.254"], "public.example.test": [PUBLIC]})
        refused = await Destinations(resolve=dns).refused_fields(settings)
        assert [e["field"] for e in refused] == [
            "channels.0.webhook.url",
            "channels.1.slack.url",
            "channels.4.webhook.url",
        ]
        assert await Destinations(allow_private=True, resolve=dns).refused_fields(settings) == []


class TestCheckedConnections:
    async def test_the_connection_goes_to_the_checked_address_with_the_name_in_host_and_tls(self) -> None:
        backend = RecordingBackend(NO_CONTENT)
        channels = channels_over(backend, Destinations(resolve=FakeDns({"hooks.example.test": [PUBLIC]})))
        channel = WebhookChannel(id="webhook-1", url="https://hooks.example.test/in?x=1", secret="s" * 16)

        attempt = await channels.send(channel, MESSAGE, now=NOW)

        assert (attempt.outcome, attempt.status_code) == ("delivered", 204)
        assert backend.connected == [(PUBLIC, 443)]
        assert backend.tls_names == ["hooks.example.test"], "SNI and certificate checks use the name"
        request = b"".join(backend.written)
        assert request.startswith(b"POST /in?x=1 HTTP/1.1\r\n")
        assert b"\r\nHost: hooks.example.test\r\n" in request

    async def test_a_name_rebound_to_a_private_address_is_never_connected_to(self) -> None:
        dns = FakeDns({"rebind.example.test": [PUBLIC]})
        backend = RecordingBackend(NO_CONTENT)
        channels = channels_over(backend, Destinations(resolve=dns))
        channel = WebhookChannel(id="webhook-1", url="http://rebind.example.test/hook", secret="s" * 16)
        assert (await channels.send(channel, MESSAGE, now=NOW)).outcome == "delivered"

        dns.table["rebind.example.test"] = ["127.0.0.1"]
        attempt = await channels.send(channel, MESSAGE, now=NOW)

        assert attempt.outcome == "failed"
        assert attempt.error == "destination_refused: the URL does not resolve to a public address"
        assert backend.connected == [(PUBLIC, 80)], "one connection, to the address that was checked"

    async def test_a_non_2xx_answer_keeps_the_status_and_never_the_body(self) -> None:
        answer = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 24\r\n\r\naws_secret_access_key=XY"
        channels = channels_over(RecordingBackend(answer), Destinations(resolve=FakeDns({"h.example.test": [PUBLIC]})))
        channel = WebhookChannel(id="webhook-1", url="http://h.example.test/", secret="s" * 16)
        attempt = await channels.send(channel, MESSAGE, now=NOW)
        assert (attempt.outcome, attempt.status_code, attempt.error) == ("failed", 403, "HTTP 403")

    async def test_a_name_that_does_not_resolve_is_retried_with_a_fixed_reason(self) -> None:
        channels = channels_over(RecordingBackend(NO_CONTENT), Destinations(resolve=FakeDns({})))
        channel = WebhookChannel(id="webhook-1", url="http://internal-admin.corp.test/", secret="s" * 16)
        attempt = await channels.send(channel, MESSAGE, now=NOW)
        assert (attempt.outcome, attempt.error) == ("retry", "dns_error: the URL's host name did not resolve")


class TestSetting:
    def test_private_destinations_are_refused_in_prod(self) -> None:
        prod = RuntimeSettings(env="prod", kafka_bootstrap="kafka:9092", operator_token_sha256="0" * 64)
        with pytest.raises(ValidationError, match="OPSMETER_ALERTING_ALLOW_PRIVATE_DESTINATIONS"):
            AlertingSettings(runtime=prod, secrets_key="k", allow_private_destinations=True)
        assert not AlertingSettings(runtime=prod, secrets_key="k").allow_private_destinations
