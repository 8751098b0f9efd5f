"""``scripts/verify-local.sh`` on the running stack: every check passes, and a mismatch fails it."""

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opsmeter_cli.stack import operator_token
from opsmeter_runtime.localstack import free_port
from tests.conftest import RunningStack

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "verify-local.sh"


def run(stack: RunningStack, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OPSMETER_GATEWAY_URL": stack.url("ingest-gateway"),
        "OPSMETER_POLICY_URL": stack.url("policy-engine"),
        "OPSMETER_REPORTING_URL": stack.url("reporting"),
        "OPSMETER_CONSOLE_URL": f"http://127.0.0.1:{free_port()}",
        "OPSMETER_OPERATOR_TOKEN": operator_token(stack.config),
        **overrides,
    }
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240, check=False)


def test_verify_local_passes_and_prints_each_check(stack: RunningStack) -> None:
    done = run(stack)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for check in ("demo data", "budget set", "SDK callback", "ingest answer flag", "soft-stop guidance"):
        assert any(line.startswith(f"PASS {check}:") for line in lines), done.stdout
    assert any(line.startswith("SKIP console toast: no console answers") for line in lines)
    assert lines[-1] == "verify-local: all checks agree"


def test_verify_local_fails_when_the_stack_does_not_answer(stack: RunningStack) -> None:
    done = run(stack, OPSMETER_GATEWAY_URL=f"http://127.0.0.1:{free_port()}")
    assert done.returncode != 0
    assert "FAIL demo data" in done.stdout


@contextmanager
def console_serving(bundle: str) -> Iterator[str]:
    """A stand-in console: ``/healthz``, an index page and one JS asset with ``bundle`` in it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = {
                "/healthz": b"ok",
                "/": b'<html><script type="module" src="/assets/app.js"></script></html>',
                "/assets/app.js": bundle.encode(),
            }.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_console_must_carry_the_notes_toast_text(stack: RunningStack) -> None:
    with console_serving('toast("Budget warning threshold reached", "warning")') as console:
        agreed = run(stack, OPSMETER_CONSOLE_URL=console)
    assert agreed.returncode == 0, agreed.stdout + agreed.stderr
    assert "PASS console toast text:" in agreed.stdout
    with console_serving('toast("Budget is high")') as console:
        differs = run(stack, OPSMETER_CONSOLE_URL=console)
    assert differs.returncode == 1
    assert "FAIL console toast text:" in differs.stdout
