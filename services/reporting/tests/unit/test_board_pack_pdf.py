"""The board pack PDF as a reader sees it: turned into PNG pages with poppler (Debian's poppler-utils)."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from opsmeter_reporting import render

POPPLER = ("pdftoppm", "pdfimages", "pdftotext")


def totals(micro: int, requests: int) -> dict[str, Any]:
    return {
        "costUsd": f"{micro / 1e6:.6f}",
        "costMicroUsd": micro,
        "requests": requests,
        "tokens": requests * 2_900,
        "costPerRequestUsd": f"{micro / requests / 1e6:.6f}" if requests else None,
    }


def pack() -> dict[str, Any]:
    days = [{"day": f"2026-11-{d:02d}", **totals(900_000 + d * 41_000, 200 + d)} for d in range(10, 24)]
    drivers = {
        dim: [{"key": f"{dim}-{i}", **totals(5_000_000 // (i + 1), 300 // (i + 1))} for i in range(5)]
        for dim in ("model", "provider", "endpointTag", "userId", "promptVersion")
    }
    return {
        "workspaceId": "ws_boardpack",
        "dataMode": "real",
        "range": {"from": "2026-11-10T00:00:00Z", "to": "2026-11-24T00:00:00Z"},
        "notice": "Retention window applied",
        "rawRetentionDays": 30,
        "summaryRetentionDays": 180,
        "summary": totals(13_219_875, 3_100),
        "trend": days,
        "topDrivers": drivers,
        "budgetHistory": [{"at": "2026-11-20T10:00:00Z", "type": "policy.budget_warning", "summary": "daily at 80 %"}],
    }


@pytest.fixture
def rendered(tmp_path: Path) -> Path:
    missing = [tool for tool in POPPLER if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"poppler-utils is not installed ({', '.join(missing)}): apt-get install poppler-utils")
    path = tmp_path / "board-pack.pdf"
    path.write_bytes(render.board_pack_pdf(pack()))
    return path


class TestBoardPackPdf:
    def test_pages_turn_into_pngs_with_a_cover_the_trend_and_the_drivers(self, rendered: Path) -> None:
        subprocess.run(["pdftoppm", "-r", "50", "-png", str(rendered), str(rendered.parent / "page")], check=True)
        pages = sorted(rendered.parent.glob("page-*.png"))
        assert len(pages) == 4, [p.name for p in pages]
        assert all(p.stat().st_size > 1000 for p in pages)

    def test_the_trend_and_driver_charts_are_images(self, rendered: Path) -> None:
        listing = subprocess.run(["pdfimages", "-list", str(rendered)], check=True, capture_output=True, text=True)
        images = [line.split() for line in listing.stdout.splitlines()[2:]]
        assert [(int(i[0]), i[2]) for i in images] == [(2, "image"), (3, "image")]
        assert all(int(i[3]) > 600 for i in images), "charts are drawn at print resolution"

    def test_money_is_formatted_and_the_retention_note_is_on_the_cover(self, rendered: Path) -> None:
        text = subprocess.run(["pdftotext", "-layout", str(rendered), "-"], check=True, capture_output=True, text=True)
        cover = text.stdout.split("\f")[0]
        assert "Retention window applied" in cover
        assert "$13.22" in cover
        assert "9M tokens" in cover
        assert not re.search(r"\$\d+\.\d{6}", text.stdout), "no six-decimal dollars"
        assert "Nov 10, 2026 00:00 UTC" in cover
        assert "Nov 23" in text.stdout
