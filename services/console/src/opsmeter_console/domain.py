"""What the proxy forwards: pure rules, unit-tested."""

import re
from urllib.parse import urlsplit

SESSION_COOKIE = "opsmeter_session"

_FORWARDABLE = re.compile(
    r"^v1/("
    r"workspaces/[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_./-]{1,200}"
    r"|billing/(subscription|subscription/change-plan|portal)"
    r"|public/[A-Za-z0-9_./-]{1,200}"
    r")$"
)
REQUEST_HEADERS = frozenset({"content-type", "idempotency-key", "accept", "x-request-id"})
RESPONSE_HEADERS = frozenset({"content-type", "content-disposition", "retry-after", "x-request-id"})


def forwardable(path: str) -> bool:
    """Workspace-scoped reads and writes, the caller's billing and public pages; never operator or ingest routes."""
    return ".." not in path and bool(_FORWARDABLE.match(path))


def same_origin(origin: str | None, host: str | None) -> bool:
    """A state-changing request must come from the console's own pages (SameSite=Strict is the first line)."""
    if origin is None:
        return True
    return host is not None and urlsplit(origin).netloc == host
