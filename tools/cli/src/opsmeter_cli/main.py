"""``opsmeter``: the operator's command line — the local stack, workspaces, the demo."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, Literal, NoReturn

import httpx
import typer

from opsmeter_cli.billing import app as billing_app
from opsmeter_cli.dlq import app as dlq_app
from opsmeter_cli.loadgen import LoadgenError, Urls
from opsmeter_cli.loadgen import run as run_loadgen
from opsmeter_cli.prices import app as prices_app
from opsmeter_cli.reporting import commands as reporting_commands
from opsmeter_cli.stack import (
    SERVICES,
    BrokerExited,
    Stack,
    StackConfig,
    operator_token,
    read_state,
    write_state,
)
from opsmeter_runtime.localstack import LocalStackError
from opsmeter_runtime.logs import configure_logging
from opsmeter_runtime.processes import pid_alive

app = typer.Typer(help="Opsmeter: LLM-cost telemetry and governance.", no_args_is_help=True)
stack_app = typer.Typer(
    help="The local stack (broker, Redis, ClickHouse on chDB, five services).", no_args_is_help=True
)
workspace_app = typer.Typer(help="Workspaces and their credentials.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(workspace_app, name="workspace")
app.add_typer(dlq_app, name="dlq")
app.add_typer(prices_app, name="prices")
app.add_typer(reporting_commands)
workspace_app.add_typer(billing_app)

PlanName = Literal["free", "starter", "pro", "team", "enterprise"]


class _Shutdown(Exception):
    pass


def _raise_shutdown(signum: int, _frame: FrameType | None) -> NoReturn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Shutdown(signal.Signals(signum).name)


@stack_app.command("run")
def stack_run() -> None:
    """Run the stack in the foreground until Ctrl-C or SIGTERM, then stop everything in order.

    A service (or Redis) that dies is restarted with backoff; only the broker's death stops the stack.
    """
    config = StackConfig.from_env()
    configure_logging("stack", os.environ.get("OPSMETER_LOG_LEVEL", "INFO"))
    stack = Stack(config)
    signal.signal(signal.SIGINT, _raise_shutdown)
    signal.signal(signal.SIGTERM, _raise_shutdown)
    code = 0
    try:
        write_state(config, "starting", {})
        stack.start(on_step=lambda m: typer.echo(f"  ✓ {m}"))
        write_state(config, "ready", stack.pids(), stack.restarts())
        typer.echo(
            f"\nOpsmeter is up. Ingest: {config.url('ingest-gateway')}/v1/ingest/llm-request\n"
            f"Create a workspace: .venv/bin/opsmeter workspace create --name acme --plan starter --json\n"
            f"Logs: {config.data_dir / 'logs'}   Stop: Ctrl-C (or make down)\n"
            "A service that dies is restarted. The broker keeps its topics in memory (its death ends the stack); "
            f"Redis (AOF) and ClickHouse keep their data under {config.data_dir}."
        )
        while True:
            if stack.supervise():
                write_state(config, "ready", stack.pids(), stack.restarts())
            time.sleep(0.25)
    except _Shutdown as signame:
        typer.echo(f"\n{signame}: stopping (gateway, consumers drain and commit, Redis, broker)…")
    except BrokerExited as exc:
        typer.echo(f"stopping: {exc} (see {config.data_dir / 'logs' / 'broker.log'})", err=True)
        code = 1
    except LocalStackError as exc:
        typer.echo(f"stack failed to start: {exc}", err=True)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        write_state(config, "stopping", stack.pids(), stack.restarts())
        stack.stop()
        config.state_file.unlink(missing_ok=True)
        typer.echo("stopped")
    raise typer.Exit(code)


@stack_app.command("up")
def stack_up(timeout: float = 180.0) -> None:
    """Start the stack in the background and return once every service is ready."""
    config = StackConfig.from_env()
    state = read_state(config)
    if state and isinstance(state.get("supervisor"), int) and pid_alive(state["supervisor"]):  # type: ignore[arg-type]
        typer.echo(f"already running (supervisor pid {state['supervisor']}); `make down` stops it")
        return
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / "logs").mkdir(exist_ok=True)
    log_path = config.data_dir / "logs" / "stack.log"
    with log_path.open("ab") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-c", "from opsmeter_cli.main import app; app()", "stack", "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(config)
        if state and state.get("state") == "ready" and state.get("supervisor") == supervisor.pid:
            typer.echo(f"Opsmeter is up (supervisor pid {supervisor.pid}); logs in {config.data_dir / 'logs'}")
            for spec in SERVICES:
                typer.echo(f"  {spec.name:<15} {config.url(spec.name)}")
            return
        if supervisor.poll() is not None:
            break
        time.sleep(0.25)
    typer.echo(f"the stack did not become ready; last lines of {log_path}:", err=True)
    typer.echo("\n".join(log_path.read_text(errors="replace").splitlines()[-30:]), err=True)
    if supervisor.poll() is None:
        supervisor.terminate()
        supervisor.wait(120)
    raise typer.Exit(1)


@stack_app.command("down")
def stack_down(timeout: float = 150.0) -> None:
    """Stop the background stack in order and check that no process is left behind."""
    config = StackConfig.from_env()
    state = read_state(config)
    if not state or not isinstance(state.get("supervisor"), int):
        typer.echo("not running")
        return
    supervisor: int = state["supervisor"]  # type: ignore[assignment]
    pids: dict[str, int] = state.get("pids") or {}  # type: ignore[assignment]
    if pid_alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(supervisor) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {name: pid for name, pid in pids.items() if pid_alive(pid)}
    for pid in left.values():
        os.kill(pid, signal.SIGKILL)
    config.state_file.unlink(missing_ok=True)
    if pid_alive(supervisor) or left:
        typer.echo(f"had to kill: {left or {'supervisor': supervisor}}", err=True)
        raise typer.Exit(1)
    typer.echo("stopped; no process left behind")


@stack_app.command("status")
def stack_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON only")] = False) -> None:
    """Show the background stack's processes and how often the supervisor restarted each."""
    config = StackConfig.from_env()
    state = read_state(config)
    if not state:
        typer.echo("not running")
        raise typer.Exit(1)
    pids: dict[str, int] = state.get("pids") or {}  # type: ignore[assignment]
    restarts: dict[str, int] = state.get("restarts") or {}  # type: ignore[assignment]
    processes = {
        name: {"pid": pid, "running": pid_alive(pid), "restarts": restarts.get(name, 0)} for name, pid in pids.items()
    }
    if as_json:
        typer.echo(
            json.dumps({"state": state.get("state"), "supervisor": state.get("supervisor"), "processes": processes})
        )
        return
    typer.echo(f"state: {state.get('state')}  supervisor: {state.get('supervisor')}")
    for name, p in processes.items():
        running = "running" if p["running"] else "gone"
        typer.echo(f"  {name:<15} pid {p['pid']:<8} {running:<8} restarts {p['restarts']}")


def _gateway_url(config: StackConfig) -> str:
    return os.environ.get("OPSMETER_GATEWAY_URL", config.url("ingest-gateway"))


def _console_url(config: StackConfig) -> str:
    return os.environ.get("OPSMETER_CONSOLE_URL", config.url("console"))


def _operator_token(config: StackConfig) -> str:
    return os.environ.get("OPSMETER_OPERATOR_TOKEN") or operator_token(config)


def _plan_body(plan: str, rate_limit: int | None, quota: int | None) -> dict[str, Any]:
    """The plan part of an operator request; exits with a clear message for an unknown plan."""
    if plan not in ("free", "starter", "pro", "team", "enterprise"):
        typer.echo(f"--plan must be one of free, starter, pro, team, enterprise (got {plan!r})", err=True)
        raise typer.Exit(2)
    body: dict[str, Any] = {"plan": plan}
    if rate_limit is not None:
        body["rateLimitPerMinute"] = rate_limit
    if quota is not None:
        body["monthlyRequestQuota"] = quota
    return body


def _post(url: str, body: dict[str, Any], headers: dict[str, str], method: str = "POST") -> dict[str, Any]:
    try:
        answer = httpx.request(method, url, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach {url}: {exc} — is the stack up (make up)?", err=True)
        raise typer.Exit(1) from None
    if answer.status_code >= 300:
        typer.echo(f"{url} answered {answer.status_code}: {answer.text}", err=True)
        raise typer.Exit(1)
    result: dict[str, Any] = answer.json()
    return result


@workspace_app.command("create")
def workspace_create(
    name: Annotated[str, typer.Option(help="Workspace name")],
    plan: Annotated[str, typer.Option(help="free|starter|pro|team|enterprise")] = "free",
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute (Enterprise policy)")] = None,
    quota: Annotated[int | None, typer.Option(help="Monthly request quota (Enterprise policy)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only")] = False,
) -> None:
    """Create a workspace; prints its id, first ingest API key and owner admin token (shown once)."""
    body = {"name": name, **_plan_body(plan, rate_limit, quota)}
    config = StackConfig.from_env()
    created = _post(f"{_gateway_url(config)}/v1/admin/workspaces", body, {"X-Operator-Token": _operator_token(config)})
    result = {k: created[k] for k in ("workspaceId", "apiKey", "adminToken")}
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"workspace  {result['workspaceId']}  ({plan})\n"
        f"apiKey     {result['apiKey']}\n"
        f"adminToken {result['adminToken']}\n"
        "Both are shown once and stored only as hashes.\n"
        f"Console    {_console_url(config)}  (sign in with the adminToken)"
    )


@workspace_app.command("set-plan")
def workspace_set_plan(
    workspace: Annotated[str, typer.Option(help="Workspace id (ws_...)")],
    plan: Annotated[str, typer.Option(help="free|starter|pro|team|enterprise")],
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute (Enterprise policy)")] = None,
    quota: Annotated[int | None, typer.Option(help="Monthly request quota (Enterprise policy)")] = None,
) -> None:
    """Set a workspace's plan as the operator; ingest limits follow within seconds, with no restart."""
    body = _plan_body(plan, rate_limit, quota)
    config = StackConfig.from_env()
    url = f"{_gateway_url(config)}/v1/admin/workspaces/{workspace}/plan"
    _post(url, body, {"X-Operator-Token": _operator_token(config)}, method="PUT")
    typer.echo(f"{workspace}: plan set to {plan}; ingest follows within seconds")


@app.command("demo")
def demo(
    events: Annotated[int, typer.Option(help="How many demo events to load")] = 3000,
    days: Annotated[int, typer.Option(help="Spread over this many past days")] = 14,
) -> None:
    """Create a demo workspace and load realistic demo events (dataMode=demo) with one cost spike."""
    config = StackConfig.from_env()
    gateway = _gateway_url(config)
    created = _post(
        f"{gateway}/v1/admin/workspaces",
        {"name": "Demo workspace", "plan": "team"},
        {"X-Operator-Token": _operator_token(config)},
    )
    loaded = _post(f"{gateway}/v1/ingest/demo", {"events": events, "days": days}, {"X-API-Key": created["apiKey"]})
    ws, token = created["workspaceId"], created["adminToken"]
    reporting = os.environ.get("OPSMETER_REPORTING_URL", config.url("reporting"))
    typer.echo(
        f"demo workspace {ws}: {loaded['accepted']} events over {days} days "
        f"(spike on {loaded['spikeDay']} in {loaded['spikeDriver']})\n"
        f"apiKey     {created['apiKey']}\nadminToken {token}\n\n"
        f"Open the console: {_console_url(config)}  (sign in with the adminToken; the data switch shows demo)\n\n"
        "Or the APIs:\n"
        f"  curl -s -H 'Authorization: Bearer {token}' "
        f"'{reporting}/v1/workspaces/{ws}/usage?groupBy=day&dataMode=demo'\n"
        f"  curl -s -H 'Authorization: Bearer {token}' "
        f"'{reporting}/v1/workspaces/{ws}/usage?groupBy=endpointTag&dataMode=demo'"
    )


@app.command("loadgen")
def loadgen(
    rate: Annotated[int, typer.Option(help="Requests per second, over all workspaces (at most 2,000)")] = 50,
    duration: Annotated[int, typer.Option(help="Seconds of load (at most 300)")] = 10,
    workspaces: Annotated[int, typer.Option(help="New workspaces to spread the load over (at most 50)")] = 2,
    plan: Annotated[str, typer.Option(help="Their plan: free|starter|pro|team (free: 120/min, so some 429s)")] = "team",
    log: Annotated[Path, typer.Option(help="The answer log (JSON lines)")] = Path(".data/loadgen/answers.jsonl"),
    settle_timeout: Annotated[float, typer.Option(help="Seconds to wait for every count to agree")] = 60.0,
) -> None:
    """A bounded load on the local gateway (loopback only), then an oracle: every 2xx counted once, to the
    micro-dollar, in /usage, the policy engine's spend and the plan counter; every rejection under its reason.
    The per-reason check reads the gateway's /metrics: exact when the loadgen is its only client and it runs one
    worker."""
    _plan_body(plan, None, None)
    config = StackConfig.from_env()
    urls = Urls(
        gateway=_gateway_url(config),
        reporting=os.environ.get("OPSMETER_REPORTING_URL", config.url("reporting")),
        policy=os.environ.get("OPSMETER_POLICY_ENGINE_URL", config.url("policy-engine")),
        billing=os.environ.get("OPSMETER_BILLING_URL", config.url("billing")),
    )
    try:
        report = asyncio.run(
            run_loadgen(
                urls,
                _operator_token(config),
                rate=rate,
                duration_s=duration,
                workspaces=workspaces,
                plan=plan,
                log_path=log,
                settle_timeout_s=settle_timeout,
            )
        )
    except (LoadgenError, httpx.HTTPError) as exc:
        typer.echo(f"loadgen: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo("\n".join([*report.lines(), f"answer log {log}"]))
    if report.problems:
        raise typer.Exit(1)


@app.callback()
def main(
    data_dir: Annotated[Path | None, typer.Option(envvar="OPSMETER_DATA_DIR", help="Local data directory")] = None,
) -> None:
    if data_dir is not None:
        os.environ["OPSMETER_DATA_DIR"] = str(data_dir)


if __name__ == "__main__":
    app()
