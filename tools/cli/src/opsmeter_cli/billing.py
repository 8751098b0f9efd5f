"""``opsmeter workspace link-subscription``: record a workspace's existing Lemon Squeezy subscription;
``opsmeter workspace reconcile-subscriptions``: read the linked subscriptions from Lemon Squeezy now."""

import json
import os
from typing import Annotated, Any

import httpx
import typer

from opsmeter_cli.stack import StackConfig, operator_token

app = typer.Typer()

PLANS = ("free", "starter", "pro", "team", "enterprise")


@app.command("link-subscription")
def link_subscription(
    workspace: Annotated[str, typer.Option(help="Workspace id (ws_…)")],
    subscription: Annotated[str, typer.Option(help="Lemon Squeezy subscription id")],
    plan: Annotated[str, typer.Option(help="The plan it pays for: starter|pro|team|enterprise")],
    test_mode: Annotated[bool, typer.Option(help="A Lemon Squeezy test-mode subscription")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only")] = False,
) -> None:
    """Link an existing subscription to a workspace; billing then follows its webhooks and reconciles it."""
    if plan not in PLANS:
        typer.echo(f"--plan must be one of {', '.join(PLANS)} (got {plan!r})", err=True)
        raise typer.Exit(2)
    body = {"workspaceId": workspace, "subscriptionId": subscription, "plan": plan, "testMode": test_mode}
    linked = _post("/v1/admin/billing/subscriptions", 201, json=body)
    if as_json:
        typer.echo(json.dumps(linked))
        return
    typer.echo(
        f"workspace {linked['workspaceId']} now follows subscription {linked['subscriptionId']} ({linked['plan']})"
    )


@app.command("reconcile-subscriptions")
def reconcile_subscriptions(
    due_only: Annotated[
        bool, typer.Option("--due-only", help="Only what the periodic run would read now, not every subscription")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only")] = False,
) -> None:
    """Read every linked subscription from Lemon Squeezy now (the least recently checked first, a bounded batch)
    and apply what changed: the repair for webhooks that never arrived."""
    report = _post("/v1/admin/billing/reconcile", 200, params={"scope": "due" if due_only else "all"}, timeout=600)
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(
        f"read {report['checked']} subscriptions from Lemon Squeezy: {report['applied']} changed, "
        f"{report['failed']} failed; {report['remaining']} not read within the verify interval yet"
        + (" (run it again)" if report["remaining"] else "")
    )


def _post(path: str, expected: int, *, timeout: float = 30, **request: Any) -> dict[str, Any]:
    config = StackConfig.from_env()
    url = f"{os.environ.get('OPSMETER_BILLING_URL', config.url('billing'))}{path}"
    token = os.environ.get("OPSMETER_OPERATOR_TOKEN") or operator_token(config)
    try:
        answer = httpx.post(url, headers={"X-Operator-Token": token}, timeout=timeout, **request)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach {url}: {exc} — is the stack up (make up)?", err=True)
        raise typer.Exit(1) from None
    if answer.status_code != expected:
        typer.echo(f"{url} answered {answer.status_code}: {answer.text}", err=True)
        raise typer.Exit(1)
    result: dict[str, Any] = answer.json()
    return result
