"""What the proxy forwards: pure rules, unit-tested."""

import re
from urllib.parse import urlsplit

SESSION_COOKIE = "opsmeter_session"

_FORWARDABLE = re.compile(
    r"^v1/("
    r"workspaces/[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_./-]{1,200}"
    r"|billing/(subscription|subscription/change-plan|checkout|portal)"
    r"|public/[A-Za-z0-9_./-]{1,200}"
    r")$"
)
REQUEST_HEADERS = frozenset({"content-type", "idempotency-key", "accept", "x-request-id"})
RESPONSE_HEADERS = frozenset({"content-type", "content-disposition", "retry-after", "x-request-id"})


def forwardable(path: str) -> bool:
    """Workspace-scoped reads and writes, the caller's billing and public pages; never operator or ingest routes."""
    return ".." not in path and bool(_FORWARDABLE.match(path))


def same_origin(origin: str | None, host: str | None, fetch_site: str | None = None) -> bool:
    """A state-changing request must come from the console's own pages (SameSite=Strict is the first line).

    Browsers send ``Origin`` with every POST, PUT and DELETE; without it, a browser's ``Sec-Fetch-Site`` must say
    same-origin. A request with neither is not a browser's, so it is not a forged one."""
    if origin is None:
        return fetch_site in (None, "same-origin", "none")
    return host is not None and urlsplit(origin).netloc == host


def session_cookie(session_id: str, token: str) -> str:
    """The cookie's value: the session id, then the admin token the services are called with."""
    return f"{session_id}.{token}"


def parse_session_cookie(value: str | None) -> tuple[str, str] | None:
    """(session id, token) of a cookie, or None when it is not one this console set."""
    session_id, dot, token = (value or "").partition(".")
    if not dot or not session_id or not token:
        return None
    return session_id, token
