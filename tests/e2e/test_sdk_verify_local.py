"""``scripts/verify-local.sh`` on the running stack: every check passes, and a mismatch fails it."""

import os
import subprocess
from pathlib import Path

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
