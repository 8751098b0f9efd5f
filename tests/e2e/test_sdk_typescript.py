"""The TypeScript SDK (``sdk/typescript``, built with its committed lockfile) run by Node against the real stack."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price

from opsmeter_runtime.provider_double import ProviderDouble
from tests.conftest import RunningStack
from tests.e2e.test_sdk_python import eventually, usage_requests, workspace
from tests.e2e.test_sdk_wrappers import exceeded_workspace

PACKAGE = Path(__file__).resolve().parents[2] / "sdk" / "typescript"


def built(npm: str) -> None:
    if not (PACKAGE / "node_modules" / "openai").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PACKAGE, check=True, timeout=600)
    subprocess.run([npm, "run", "build"], cwd=PACKAGE, check=True, timeout=300)


def sql(stack: RunningStack, ws: dict[str, Any], query: str) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{stack.url('reporting')}/v1/workspaces/{ws['workspaceId']}/sql",
        json={"sql": query},
        headers={"Authorization": f"Bearer {ws['adminToken']}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def test_the_typescript_sdk_against_the_stack(stack: RunningStack) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the TypeScript SDK's tests")
    built(npm)
    bulk = workspace(stack, plan="enterprise", rateLimitPerMinute=1_000_000, monthlyRequestQuota=1_000_000)
    free = workspace(stack, plan="free")
    quota = workspace(stack, plan="enterprise", rateLimitPerMinute=100_000, monthlyRequestQuota=50)
    wrap = workspace(stack, plan="team")
    enforce = exceeded_workspace(stack)
    with ProviderDouble() as fake:
        done = subprocess.run(
            [node, "--test", "test/"],
            cwd=PACKAGE,
            env={
                **os.environ,
                "OPSMETER_URL": stack.url("ingest-gateway"),
                "BULK_KEY": bulk["apiKey"],
                "FREE_KEY": free["apiKey"],
                "QUOTA_KEY": quota["apiKey"],
                "WRAP_KEY": wrap["apiKey"],
                "ENFORCE_KEY": enforce["apiKey"],
                "ENFORCE_WORKSPACE": enforce["workspaceId"],
                "ENFORCE_ADMIN": enforce["adminToken"],
                "POLICY_URL": stack.url("policy-engine"),
                "FAKE_OPENAI_URL": fake.openai_url,
                "FAKE_ANTHROPIC_URL": fake.url,
            },
            capture_output=True,
            text=True,
            timeout=280,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert "# pass 64" in done.stdout, done.stdout[-2000:]
        assert "# skipped 0" in done.stdout, done.stdout[-2000:]
        streamed = [c.body for c in fake.calls_to("openai") if c.body.get("stream")]
        assert [body.get("stream_options") for body in streamed] == [{"include_usage": True}]
    assert eventually(lambda: usage_requests(stack, bulk) == 10_000, timeout=60)
    assert eventually(lambda: usage_requests(stack, free) == 160, timeout=60)
    rows = eventually(
        lambda: (
            found
            if len(
                found := sql(
                    stack,
                    wrap,
                    "SELECT endpoint_tag, model, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, "
                    "cost_micro_usd FROM llm_requests_raw ORDER BY endpoint_tag",
                )
            )
            == 4
            else None
        ),
        timeout=30,
    )
    o, a = fake.openai_usage, fake.anthropic_usage
    whole = a.input_tokens + a.cache_read_input_tokens + a.cache_creation_input_tokens
    prices = {
        "ts.openai": calc_price(
            Usage(input_tokens=o.prompt_tokens, cache_read_tokens=o.cached_tokens, output_tokens=o.completion_tokens),
            model_ref="gpt-4o-mini",
            provider_id="openai",
        ).total_price,
        "ts.anthropic": calc_price(
            Usage(
                input_tokens=whole,
                cache_read_tokens=a.cache_read_input_tokens,
                cache_write_tokens=a.cache_creation_input_tokens,  # sent by default: priced as writes
                output_tokens=a.output_tokens,
            ),
            model_ref="claude-sonnet-4-5",
            provider_id="anthropic",
        ).total_price,
    }
    expected = {
        "ts.openai": (o.prompt_tokens, o.completion_tokens, o.cached_tokens, o.reasoning_tokens),
        "ts.anthropic": (whole, a.output_tokens, a.cache_read_input_tokens, None),
    }
    for row in rows:
        tag = row["endpoint_tag"]
        got = (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"], row["reasoning_tokens"])
        assert got[:3] == expected[tag][:3], json.dumps(row)
        if expected[tag][3] is not None:
            assert got[3] == expected[tag][3]
        assert row["cost_micro_usd"] == int((prices[tag] * 1_000_000).to_integral_value()), json.dumps(row)

    enforced = eventually(
        lambda: (
            found
            if len(
                found := sql(
                    stack,
                    enforce,
                    "SELECT endpoint_tag, model, status, error_code, metadata FROM llm_requests_raw "
                    "WHERE startsWith(endpoint_tag, 'ts.enforce.') ORDER BY endpoint_tag",
                )
            )
            == 6
            else None
        ),
        timeout=30,
    )
    seen = {row["endpoint_tag"]: (row["model"], json.loads(row["metadata"])) for row in enforced}
    assert seen["ts.enforce.block"][1]["opsmeterAction"] == "block"
    assert seen["ts.enforce.fallback"] == (
        "gpt-4o-mini",
        {
            "opsmeterAction": "fallback",
            "opsmeterActionMode": "applied",
            "opsmeterActionDetail": "model gpt-4o->gpt-4o-mini",
        },
    )
    assert seen["ts.enforce.clamp"][1]["opsmeterActionDetail"] == "max_tokens 4096->64"
    for action in ("block", "clamp", "fallback"):
        model, metadata = seen[f"ts.enforce.observe.{action}"]
        assert model == "gpt-4o"
        assert (metadata["opsmeterAction"], metadata["opsmeterActionMode"]) == (action, "observed")
