"""``opsmeter sql`` and ``opsmeter reporting rebuild``: through reporting's HTTP API, never opening chDB.

In the local stack the reporting process owns the embedded ClickHouse (one process per path), so these
commands ask it. The operator token (``.data/operator-token`` or ``OPSMETER_OPERATOR_TOKEN``) sees every
workspace; with ``--workspace`` and ``--token`` (a workspace admin token) a query sees only that workspace.
"""

import json
import os
from datetime import datetime
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
