"""The fixtures the SDK's tests share. A test file that reads the records its own way overrides ``ingest`` with a
:class:`opsmeter_double.MemoryIngest` of its own (``om`` then sends to that one); one that needs another client or
provider overrides ``om`` or ``fake``."""

from collections.abc import Iterator

import httpx
import pytest
from opsmeter_double import MemoryIngest, Opsmeterd

from opsmeter import Opsmeter
from opsmeter_runtime.provider_double import ProviderDouble


@pytest.fixture(scope="module")
def fake() -> Iterator[ProviderDouble]:
    """The local provider double: OpenAI at ``fake.openai_url``, Anthropic at ``fake.url``."""
    with ProviderDouble() as double:
        yield double


@pytest.fixture
def ingest() -> MemoryIngest:
    return MemoryIngest()


@pytest.fixture
def om(ingest: MemoryIngest) -> Iterator[Opsmeter]:
    """A client sending its records to ``ingest``, in memory."""
    client = Opsmeter("om_live_x_y", base_url="http://ingest.test", transport=httpx.MockTransport(ingest))
    yield client
    client.shutdown(timeout=1)


@pytest.fixture
def server() -> Iterator[Opsmeterd]:
    """Opsmeter (runtime policy and ingest) and a chat-completions provider on a local socket; a test sets its
    ``policy`` (None, as it starts: a 503)."""
    with Opsmeterd() as running:
        yield running
