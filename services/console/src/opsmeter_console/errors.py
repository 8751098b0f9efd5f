from opsmeter_runtime.errors import NotFound, Unavailable


class NotForwarded(NotFound):
    """A path the console's proxy does not forward (operator, ingest and unknown routes)."""


class UpstreamUnavailable(Unavailable):
    """The service behind the proxy did not answer."""
