"""``opsmeter sql`` and ``opsmeter reporting rebuild``: through reporting's HTTP API, never opening chDB.

In the local stack the reporting process owns the embedded ClickHouse (one process per path), so these
commands ask it. The operator token (``.data/operator-token`` or ``OPSMETER_OPERATOR_TOKEN``) sees every
workspace; with ``--workspace`` and ``--token`` (a workspace admin token) a query sees only that workspace.
"""

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from opsmeter_cli.stack import StackConfig, operator_token

commands = typer.Typer()
reporting_app = typer.Typer(help="Reporting: rollups and summaries in ClickHouse.", no_args_is_help=True)
commands.add_typer(reporting_app, name="reporting")


def _reporting_url(config: StackConfig) -> str:
    return os.environ.get("OPSMETER_REPORTING_URL", config.url("reporting"))


def _operator_headers(config: StackConfig) -> dict[str, str]:
    return {"X-Operator-Token": os.environ.get("OPSMETER_OPERATOR_TOKEN") or operator_token(config)}


def _call(url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    from opsmeter_cli.main import _post  # at call time: main registers this module's commands

    return _post(url, body, headers)


@commands.command("sql")
def sql(
    query: Annotated[str, typer.Argument(help="One read-only SELECT over the tables in docs/reporting-tables.md")],
    workspace: Annotated[str | None, typer.Option(help="Scope to this workspace (needs --token)")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="OPSMETER_ADMIN_TOKEN", help="The workspace's admin token")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="At most this many rows")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Run read-only SQL on reporting's ClickHouse (every workspace with the operator token)."""
    config = StackConfig.from_env()
    body = {"sql": query, "maxRows": max_rows}
    if workspace:
        if not token:
            typer.echo("--workspace needs --token (the workspace's admin token)", err=True)
            raise typer.Exit(2)
        url = f"{_reporting_url(config)}/v1/workspaces/{workspace}/sql"
        result = _call(url, body, {"Authorization": f"Bearer {token}"})
    else:
        result = _call(f"{_reporting_url(config)}/v1/admin/sql", body, _operator_headers(config))
    if as_json:
        typer.echo(json.dumps(result, default=str))
        return
    typer.echo("\t".join(result["columns"]))
    for row in result["rows"]:
        typer.echo("\t".join(str(v) for v in row))


@reporting_app.command("rebuild")
def rebuild(
    from_: Annotated[datetime, typer.Option("--from", help="Start (UTC); whole days around it are rebuilt")],
    to: Annotated[datetime, typer.Option("--to", help="End (UTC), exclusive")],
    workspace: Annotated[str | None, typer.Option(help="Only this workspace")] = None,
) -> None:
    """Recompute hourly rollups and daily summaries from raw rows (operator token)."""
    config = StackConfig.from_env()
    body: dict[str, Any] = {"from": _utc(from_), "to": _utc(to)}
    if workspace:
        body["workspaceId"] = workspace
    result = _call(f"{_reporting_url(config)}/v1/admin/rollups/rebuild", body, _operator_headers(config))
    typer.echo(f"rebuilt {result['from']} → {result['to']} from {result['rawEvents']} raw events")


def _utc(moment: datetime) -> str:
    return moment.isoformat() if moment.tzinfo else moment.isoformat() + "+00:00"


@commands.command("reconcile")
def reconcile(
    provider: Annotated[str, typer.Option(help="openai or anthropic")],
    workspace: Annotated[str, typer.Option(help="The workspace to reconcile")],
    token: Annotated[str, typer.Option(envvar="OPSMETER_ADMIN_TOKEN", help="The workspace's admin token")],
    file: Annotated[
        Path | None, typer.Option(help="The provider's cost report: its JSON response, or a CSV export (.csv)")
    ] = None,
    admin_key: Annotated[
        str | None, typer.Option(envvar="OPSMETER_PROVIDER_ADMIN_KEY", help="Fetch the report with this admin key")
    ] = None,
    from_: Annotated[datetime | None, typer.Option("--from", help="Fetch from (UTC)")] = None,
    to: Annotated[datetime | None, typer.Option("--to", help="Fetch until (UTC), exclusive")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Compare the provider's bill with what Opsmeter computed, per UTC day and model, and name each gap's reason."""
    if provider not in ("openai", "anthropic"):
        typer.echo("--provider must be openai or anthropic", err=True)
        raise typer.Exit(2)
    body: dict[str, Any] = {"provider": provider}
    if file is not None:
        text = file.read_text(encoding="utf-8")
        if file.suffix.lower() == ".csv":
            body["csv"] = text
        else:
            body["report"] = json.loads(text)
    elif admin_key and from_ and to:
        body["fetch"] = {"adminKey": admin_key, "from": _utc(from_), "to": _utc(to)}
    else:
        typer.echo("give --file, or --admin-key with --from and --to", err=True)
        raise typer.Exit(2)
    config = StackConfig.from_env()
    url = f"{_reporting_url(config)}/v1/workspaces/{workspace}/reconciliation"
    result = _call(url, body, {"Authorization": f"Bearer {token}"})
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo("day\tmodel\trequests\tcomputed\treported\tbilled\tgap\treason")
    for d in result["days"]:
        typer.echo(
            f"{d['day']}\t{d['model']}\t{d['requests']}\t{d['computedUsd']}\t{d['reportedUsd']}\t{d['billedUsd']}\t"
            f"{d['gapUsd']}\t{d['reason']}: {d['explanation']}"
        )
    totals = result["totals"]
    typer.echo(
        f"total: computed ${totals['computedUsd']}, billed ${totals['billedUsd']}, gap ${totals['gapUsd']}; "
        f"{result['gaps']} day(s) and model(s) with a gap"
    )
