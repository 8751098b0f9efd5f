"""The console's HTTP client to the five services, and one forward that survives a closed keep-alive connection.

uvicorn closes a connection that stayed idle for 5 s. When the console reuses such a connection at the moment
the service closes it, the request fails before any byte of an answer (``RemoteProtocolError``: the server
disconnected). The client therefore drops idle connections after 2 s, before the services do, and a read
(GET, HEAD) that still meets a closed connection is sent once more on a new one; a write is never sent twice
(ADR 63).
"""

import httpx

IDLE_CONNECTION_S = 2.0
"""Shorter than uvicorn's keep-alive timeout (5 s), so the console is the side that closes an idle connection."""

SAFE_METHODS = frozenset({"GET", "HEAD"})


def upstream_client(timeout_s: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=timeout_s,
        follow_redirects=False,
        limits=httpx.Limits(keepalive_expiry=IDLE_CONNECTION_S),
        transport=httpx.AsyncHTTPTransport(retries=1),
    )


async def forward(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    params: str,
    content: bytes,
    headers: dict[str, str],
) -> httpx.Response:
    """Send one request upstream; a read that met a connection the service had closed is sent again once."""
    try:
        return await client.request(method, url, params=params, content=content, headers=headers)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        if method not in SAFE_METHODS:
            raise
        return await client.request(method, url, params=params, content=content, headers=headers)
