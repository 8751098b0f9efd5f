"""``opsmeter prices update``: a new catalog version from the installed genai-prices, never silently applied to
stored calls."""

import json
from pathlib import Path

from typer.testing import CliRunner

from opsmeter_cli.main import app
from opsmeter_pricing.snapshot import CATALOG_PATH, build_catalog

runner = CliRunner()


class TestPricesUpdate:
    def test_a_stale_snapshot_is_replaced_by_a_new_version(self, tmp_path: Path) -> None:
        stale = tmp_path / "catalog.json"
        stale.write_text(json.dumps({"version": "genai-prices-0.0.1+000000000000", "providers": []}))
        checked = runner.invoke(app, ["prices", "update", "--path", str(stale), "--check"])
        assert checked.exit_code == 1, checked.output
        assert "stale" in checked.output
        result = runner.invoke(app, ["prices", "update", "--path", str(stale)])
        assert result.exit_code == 0, result.output
        new_version = build_catalog()["version"]
        assert f"genai-prices-0.0.1+000000000000 -> {new_version}" in result.output
        assert "repricing" in result.output
        assert stale.read_text() == CATALOG_PATH.read_text()

    def test_the_checked_in_snapshot_is_current(self) -> None:
        result = runner.invoke(app, ["prices", "update", "--check"])
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output
