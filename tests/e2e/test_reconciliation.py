"""Reconciliation end to end (ADR 57): the fixture reports, shaped as OpenAI and Anthropic document their cost
responses, moved to the last days; the calls of one day were never sent, and the CLI and the API name that gap."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opsmeter_cli.main import app
from opsmeter_runtime.testing import eventually
from tests.conftest import RunningStack

FIXTURES = Path(__file__).parents[2] / "services" / "reporting" / "tests" / "fixtures" / "reconciliation"
FIRST_FIXTURE_DAY = date(2026, 11, 10)


def first_day() -> date:
    return datetime.now(UTC).date() - timedelta(days=4)


def moved_openai_costs() -> dict[str, Any]:
    """The fixture with its three days moved to the last days (the gateway takes calls up to 7 days old)."""
    shift = int((first_day() - FIRST_FIXTURE_DAY).total_seconds())
    report: dict[str, Any] = json.loads((FIXTURES / "openai_costs.json").read_text())
    for bucket in report["data"]:
        bucket["start_time"] += shift
        bucket["end_time"] += shift
    return report


def moved_anthropic_report() -> dict[str, Any]:
    shift = first_day() - FIRST_FIXTURE_DAY
    report: dict[str, Any] = json.loads((FIXTURES / "anthropic_cost_report.json").read_text())
    for bucket in report["data"]:
        for edge in ("starting_at", "ending_at"):
            moved = datetime.fromisoformat(bucket[edge].replace("Z", "+00:00")) + shift
            bucket[edge] = moved.isoformat().replace("+00:00", "Z")
    return report


@pytest.fixture(scope="module")
def workspace(stack: RunningStack) -> dict[str, Any]:
    """$1.20 of gpt-4o-mini and of claude-sonnet-4-5 on the first and third day; nothing on the second."""
    ws = stack.create_workspace()
    calls = [
        ("openai", "gpt-4o-mini", 4_000_000, 1_000_000),  # 4M x $0.15 + 1M x $0.60
        ("anthropic", "claude-sonnet-4-5", 200_000, 40_000),  # 200K x $3 + 40K x $15 (not above the 200K tier)
    ]
    for day in (first_day(), first_day() + timedelta(days=2)):
        for provider, model, inp, out in calls:
            body = {
                "externalRequestId": f"req_{uuid.uuid4().hex}",
                "provider": provider,
                "model": model,
                "inputTokens": inp,
                "outputTokens": out,
                "timestamp": f"{day.isoformat()}T09:00:00Z",
            }
            answer = httpx.post(
                f"{stack.url('ingest-gateway')}/v1/ingest/llm-request", json=body, headers={"X-API-Key": ws["apiKey"]}
            )
            assert (answer.status_code, answer.json()["costUsd"]) == (202, "1.2"), answer.text
    usage = f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/usage"
    headers = {"Authorization": f"Bearer {ws['adminToken']}"}
    window = {"from": f"{first_day().isoformat()}T00:00:00Z"}
    eventually(lambda: httpx.get(usage, params=window, headers=headers).json()["totals"]["requests"] == 4)
    return ws


class TestReconcile:
    def test_the_cli_names_the_day_whose_records_are_missing(
        self, stack: RunningStack, workspace: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        costs = tmp_path / "costs.json"
        costs.write_text(json.dumps(moved_openai_costs()))
        monkeypatch.setenv("OPSMETER_REPORTING_URL", stack.url("reporting"))
        args = ["reconcile", "--provider", "openai", "--file", str(costs)]
        args += ["--workspace", workspace["workspaceId"], "--token", workspace["adminToken"]]
        result = CliRunner().invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        answer = json.loads(result.output)
        missing = (first_day() + timedelta(days=1)).isoformat()
        assert [(d["day"], d["model"], d["billedUsd"], d["gapUsd"], d["reason"]) for d in answer["days"]] == [
            (first_day().isoformat(), "gpt-4o-mini", "1.2", "0", "matches"),
            (missing, "gpt-4o-mini", "1.2", "1.2", "records_missing"),
            ((first_day() + timedelta(days=2)).isoformat(), "gpt-4o-mini", "1.2", "0", "matches"),
        ]
        assert (answer["gaps"], answer["totals"]["gapUsd"]) == (1, "1.2")
        table = CliRunner().invoke(app, args)
        assert f"{missing}\tgpt-4o-mini\t0\t0\t0\t1.2\t1.2\trecords_missing" in table.output

    def test_the_api_reads_anthropics_cost_report(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        answer = httpx.post(
            f"{stack.url('reporting')}/v1/workspaces/{workspace['workspaceId']}/reconciliation",
            json={"provider": "anthropic", "report": moved_anthropic_report()},
            headers={"Authorization": f"Bearer {workspace['adminToken']}"},
        )
        assert answer.status_code == 200, answer.text
        assert [(d["model"], d["computedUsd"], d["billedUsd"], d["reason"]) for d in answer.json()["days"]] == [
            ("claude-sonnet-4-5", "1.2", "1.2", "matches"),
            ("claude-sonnet-4-5", "0", "1.2", "records_missing"),
            ("claude-sonnet-4-5", "1.2", "1.5", "cache_tokens_missing"),
        ]

    def test_a_report_of_the_wrong_shape_names_the_field(self, stack: RunningStack, workspace: dict[str, Any]) -> None:
        answer = httpx.post(
            f"{stack.url('reporting')}/v1/workspaces/{workspace['workspaceId']}/reconciliation",
            json={"provider": "openai", "report": moved_anthropic_report()},
            headers={"Authorization": f"Bearer {workspace['adminToken']}"},
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "report"
