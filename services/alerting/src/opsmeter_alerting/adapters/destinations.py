"""Where webhook and Slack alerts may go: names resolved, every address checked, the checked address connected to.

A channel URL is an admin's input, and alerting runs inside the network: without this a URL could reach
loopback, private or cloud-metadata addresses (SSRF). The rule itself is ``domain.refusal_of`` (ADR 70).
"""

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore
import httpx
import structlog

from opsmeter_alerting.domain import AlertSettings, IPAddress, literal_address, refusal_of

log = structlog.get_logger(__name__)

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

REFUSED_MESSAGE = (
    "must reach a public address: loopback, private, link-local (cloud metadata), CGNAT, multicast and "
    "reserved addresses are refused"
)


class RefusedDestination(Exception):
    """The host is, or resolves to, an address alerts may not be sent to."""


class UnresolvedDestination(Exception):
    """The host's name did not resolve."""


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = literal_address(str(sockaddr[0]))
        if address is not None and address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class Destinations:
    """Resolves a channel's host and refuses it unless every address is public (or private ones are allowed)."""

    allow_private: bool = False
    resolve: Resolver = system_resolver
    resolve_timeout_s: float = 5.0

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` stands for, all of them allowed; raises if the name does not resolve or one is not."""
        literal = literal_address(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                async with asyncio.timeout(self.resolve_timeout_s):
                    addresses = await self.resolve(host, port)
            except (OSError, TimeoutError) as exc:
                raise UnresolvedDestination(host) from exc
        if not addresses:
            raise UnresolvedDestination(host)
        if not self.allow_private:
            for address in addresses:
                if reason := refusal_of(address):
                    log.warning("alert_destination_refused", host=host, address=str(address), reason=reason)
                    raise RefusedDestination(f"{host} is {reason}")
        return addresses

    async def refused_fields(self, settings: AlertSettings) -> list[dict[str, str]]:
        """The channel URLs of ``settings`` that point at a refused address, as validation errors.

        A name that does not resolve now is accepted: every send resolves and checks again.
        """
        errors = []
        for field, url in settings.http_destinations():
            try:
                parsed = httpx.URL(url)
                if not parsed.host:
                    raise httpx.InvalidURL("no host")
                await self.addresses(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
            except httpx.InvalidURL:
                errors.append({"field": field, "message": "must be a valid http(s) URL with a host"})
            except RefusedDestination:
                errors.append({"field": field, "message": REFUSED_MESSAGE})
            except UnresolvedDestination:
                continue
        return errors


class CheckedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but a connection goes only to an address ``Destinations`` allowed, the very one
    it checked: a DNS answer that changes between check and connect (rebinding) cannot swap it. TLS still verifies
    the URL's name (httpcore passes it as ``server_hostname``), and the Host header is the URL's."""

    def __init__(self, destinations: Destinations, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._destinations = destinations
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self._destinations.addresses(host, port):
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedDestination("unix sockets are not alert destinations")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def checked_pool(destinations: Destinations) -> httpcore.AsyncConnectionPool:
    """The connection pool webhook and Slack alerts go through (certificates verified against certifi's roots);
    it never follows redirects."""
    return httpcore.AsyncConnectionPool(
        ssl_context=httpcore.default_ssl_context(),
        network_backend=CheckedNetworkBackend(destinations),
        keepalive_expiry=30.0,
        max_connections=50,
    )
