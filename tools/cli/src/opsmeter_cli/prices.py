"""``opsmeter prices``: the price catalog snapshot (ADR 8, ADR 57)."""

import json
from pathlib import Path
from typing import Annotated

import typer

from opsmeter_pricing.snapshot import CATALOG_PATH, build_catalog, render_catalog

app = typer.Typer(help="The price catalog: a versioned snapshot of the installed genai-prices.", no_args_is_help=True)


@app.command("update")
def update(
    path: Annotated[Path, typer.Option(help="Where the catalog snapshot lives.")] = CATALOG_PATH,
    check: Annotated[bool, typer.Option("--check", help="Only say whether the snapshot is stale (exit 1).")] = False,
) -> None:
    """Re-snapshot the catalog from the installed genai-prices into a new catalog version.

    Calls already stored keep the price they were charged at: preview the change with
    ``POST /v1/workspaces/{id}/repricing`` (``dryRun: true``), then apply it with a reason.
    """
    catalog = build_catalog()
    text = render_catalog(catalog)
    previous = json.loads(path.read_text(encoding="utf-8"))["version"] if path.exists() else None
    if previous == catalog["version"]:
        typer.echo(f"price catalog {previous} is up to date with genai-prices {catalog['source']['version']}")
        return
    if check:
        typer.echo(f"price catalog {previous} is stale: genai-prices gives {catalog['version']}")
        raise typer.Exit(1)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"price catalog {previous} -> {catalog['version']} (restart the services to use it)")
    typer.echo("stored calls keep their price until re-priced: POST /v1/workspaces/{id}/repricing, dryRun first")
