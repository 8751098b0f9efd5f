"""``opsmeter loadgen`` against the running stack: its oracle finds every answer counted exactly once."""

import json
from pathlib import Path

from typer.testing import CliRunner

from opsmeter_cli.main import app as cli
from opsmeter_cli.stack import operator_token
from tests.conftest import RunningStack


def test_a_bounded_load_with_rejections_is_counted_exactly(stack: RunningStack, tmp_path: Path) -> None:
    env = {
        "OPSMETER_GATEWAY_URL": stack.url("ingest-gateway"),
        "OPSMETER_REPORTING_URL": stack.url("reporting"),
        "OPSMETER_POLICY_ENGINE_URL": stack.url("policy-engine"),
        "OPSMETER_BILLING_URL": stack.url("billing"),
        "OPSMETER_OPERATOR_TOKEN": operator_token(stack.config),
    }
    log = tmp_path / "answers.jsonl"
    args = ["loadgen", "--rate", "100", "--duration", "3", "--workspaces", "2", "--plan", "free", "--log", str(log)]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "exact:" in result.output
    answers = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(answers) == 300
    statuses = {a["status"] for a in answers}
    assert statuses <= {202, 429}
    assert 429 in statuses  # the free plan's 120/min per workspace refuses part of 150 each
    assert any(a["duplicate"] for a in answers)  # repeats were sent and answered as such


def test_a_target_off_this_machine_is_refused(tmp_path: Path) -> None:
    env = {"OPSMETER_GATEWAY_URL": "http://10.1.2.3:8080", "OPSMETER_OPERATOR_TOKEN": "x"}
    result = CliRunner().invoke(cli, ["loadgen", "--log", str(tmp_path / "a.jsonl")], env=env)
    assert result.exit_code == 2
    assert "loopback" in result.output
