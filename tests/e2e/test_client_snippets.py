"""The product notes' client snippets behave as their comments say against the real gateway."""

import contextlib
import io
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmeter_cli.stack import operator_token
from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack

SNIPPETS = Path(__file__).parent / "client_snippets"
PRODUCTION_URL = "https://api.opsmeter.io"


def python_client(base_url: str) -> Callable[[dict[str, Any], str], None]:
    namespace: dict[str, Any] = {}
    source = (SNIPPETS / "send_telemetry.py").read_text().replace(PRODUCTION_URL, base_url)
    exec(compile(source, "send_telemetry.py", "exec"), namespace)
    send: Callable[[dict[str, Any], str], None] = namespace["send_telemetry"]
    return send


def payload() -> dict[str, Any]:
    return {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}"}


def run(send: Callable[[dict[str, Any], str], None], key: str) -> tuple[str, float]:
    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        send(payload(), key)
    return out.getvalue(), time.monotonic() - started


def workspace(stack: RunningStack, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{stack.url('ingest-gateway')}/v1/admin/workspaces",
        json={"name": "snippets", **fields},
        headers={"X-Operator-Token": operator_token(stack.config)},
    )
    created: dict[str, Any] = answer.json()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        plan = httpx.get(
            f"{stack.url('billing')}/v1/workspaces/{created['workspaceId']}/plan",
            headers={"Authorization": f"Bearer {created['adminToken']}"},
        )
        if plan.status_code == 200:
            break
        time.sleep(0.05)
    return created


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: the worst gateway a client can meet."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


class TestPythonClient:
    def test_accepted_telemetry_returns_quietly_within_its_timeout(self, stack: RunningStack) -> None:
        ws = workspace(stack, plan="starter")
        send = python_client(stack.url("ingest-gateway"))
        for _ in range(20):
            printed, took = run(send, ws["apiKey"])
            assert printed == ""
            assert took < 0.6

    def test_throttled_telemetry_reads_retry_after(self, stack: RunningStack) -> None:
        ws = workspace(stack, plan="enterprise", rateLimitPerMinute=1)
        send = python_client(stack.url("ingest-gateway"))
        run(send, ws["apiKey"])
        printed, took = run(send, ws["apiKey"])
        assert printed.startswith("Telemetry throttled, retry after ")
        assert 1 <= int(printed.split()[-1].rstrip("s")) <= 60
        assert took < 0.6

    def test_paused_telemetry_is_reported_not_raised(self, stack: RunningStack) -> None:
        ws = workspace(stack, plan="enterprise", rateLimitPerMinute=1000, monthlyRequestQuota=0)
        printed, took = run(python_client(stack.url("ingest-gateway")), ws["apiKey"])
        assert printed == "Telemetry paused due to plan/budget policy.\n"
        assert took < 0.6

    def test_bad_input_and_a_bad_key_never_raise(self, stack: RunningStack) -> None:
        send = python_client(stack.url("ingest-gateway"))
        send({"inputTokens": float("nan")}, "om_live_nobody_0000")
        send(payload(), "")

    def test_an_unreachable_or_silent_gateway_never_raises_or_hangs(self, silent_server: str) -> None:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        for url in (f"http://127.0.0.1:{port}", silent_server):
            printed, took = run(python_client(url), "om_live_abc_def")
            assert printed == ""
            assert took < 0.6 + 0.3


class TestJavaScriptClient:
    def test_the_fetch_client_handles_accepted_throttled_and_paused(self, stack: RunningStack, tmp_path: Path) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed here; TestClientContract checks what the JS client relies on")
        throttled = workspace(stack, plan="enterprise", rateLimitPerMinute=1)
        paused = workspace(stack, plan="enterprise", rateLimitPerMinute=1000, monthlyRequestQuota=0)
        snippet = (SNIPPETS / "sendTelemetry.mjs").read_text().replace(PRODUCTION_URL, stack.url("ingest-gateway"))
        body = repr(payload()).replace("'", '"')
        script = tmp_path / "client.mjs"
        script.write_text(
            snippet
            + f"\nconst p = {body};\n"
            + f"await sendTelemetry({{...p, externalRequestId: 'a1'}}, '{throttled['apiKey']}');\n"
            + f"await sendTelemetry({{...p, externalRequestId: 'a2'}}, '{throttled['apiKey']}');\n"
            + f"await sendTelemetry({{...p, externalRequestId: 'b1'}}, '{paused['apiKey']}');\n"
            + "await sendTelemetry(p, '');\n"
        )
        done = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[0].startswith("Telemetry throttled, retry after ")
        assert lines[1] == "Telemetry paused due to plan/budget policy."


class TestClientContract:
    """What all three snippets (JavaScript, C#, Python) rely on, checked on the wire."""

    def test_429_carries_whole_seconds_and_402_means_paused(self, stack: RunningStack) -> None:
        url = f"{stack.url('ingest-gateway')}/v1/ingest/llm-request"
        limited = workspace(stack, plan="enterprise", rateLimitPerMinute=1)
        httpx.post(url, json=payload(), headers={"X-API-Key": limited["apiKey"]})
        throttled = httpx.post(url, json=payload(), headers={"X-API-Key": limited["apiKey"]})
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"].isdigit()
        assert int(throttled.headers["Retry-After"]) >= 1

        paused_ws = workspace(stack, plan="enterprise", rateLimitPerMinute=1000, monthlyRequestQuota=0)
        paused = httpx.post(url, json=payload(), headers={"X-API-Key": paused_ws["apiKey"]})
        assert paused.status_code == 402
        body = paused.json()
        assert body["reason"] == "plan_limit_reached"
        assert body["telemetryPaused"] is True
        assert body["providerCallsContinue"] is True

    def test_the_toast_flags_are_always_there_and_agree(self, stack: RunningStack) -> None:
        ws = workspace(stack, plan="starter")
        body = httpx.post(
            f"{stack.url('ingest-gateway')}/v1/ingest/llm-request", json=payload(), headers={"X-API-Key": ws["apiKey"]}
        ).json()
        assert body["isBudgetWarning"] is body["budgetWarning"] is False
        assert body["isBudgetExceeded"] is body["budgetExceeded"] is False
        assert body["telemetryPaused"] is False
