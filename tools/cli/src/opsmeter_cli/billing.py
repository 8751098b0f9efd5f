"""``opsmeter workspace link-subscription``: record a workspace's existing Lemon Squeezy subscription."""

import json
import os
from typing import Annotated

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
    config = StackConfig.from_env()
    url = f"{os.environ.get('OPSMETER_BILLING_URL', config.url('billing'))}/v1/admin/billing/subscriptions"
    token = os.environ.get("OPSMETER_OPERATOR_TOKEN") or operator_token(config)
    body = {"workspaceId": workspace, "subscriptionId": subscription, "plan": plan, "testMode": test_mode}
    try:
        answer = httpx.post(url, json=body, headers={"X-Operator-Token": token}, timeout=30)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach {url}: {exc} — is the stack up (make up)?", err=True)
        raise typer.Exit(1) from None
    if answer.status_code != 201:
        typer.echo(f"{url} answered {answer.status_code}: {answer.text}", err=True)
        raise typer.Exit(1)
    linked = answer.json()
    if as_json:
        typer.echo(json.dumps(linked))
        return
    typer.echo(
        f"workspace {linked['workspaceId']} now follows subscription {linked['subscriptionId']} ({linked['plan']})"
    )
