"""Reports rendered from their JSON: the weekly HTML page (inline SVG, no scripts), board pack CSV and PDF."""

import csv
import io
from collections.abc import Sequence
from html import escape
from typing import Any

from fpdf import FPDF


def _bars_svg(title: str, labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]]) -> str:
    """A grouped bar chart: ``series`` are (name, colour, values) over ``labels``."""
    width, height, pad = 640, 220, 30
    peak = max([v for _, _, values in series for v in values] + [1])
    group_w = (width - 2 * pad) / max(1, len(labels))
    bar_w = group_w / (len(series) + 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" role="img">']
    parts.append(f"<title>{escape(title)}</title>")
    for i, label in enumerate(labels):
        x0 = pad + i * group_w
        for j, (_, colour, values) in enumerate(series):
            value = values[i] if i < len(values) else 0
            h = (height - pad) * value / peak
            parts.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{height - h:.1f}" width="{bar_w * 0.9:.1f}" '
                f'height="{h:.1f}" fill="{colour}"/>'
            )
        parts.append(f'<text x="{x0:.1f}" y="{height + 14}" font-size="10">{escape(label)}</text>')
    for j, (name, colour, _) in enumerate(series):
        parts.append(f'<rect x="{pad + j * 140}" y="{height + 24}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{pad + j * 140 + 14}" y="{height + 33}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def weekly_html(report: dict[str, Any]) -> str:
    s = report["summary"]
    cur, prev, delta = s["current"], s["previous"], s["delta"]
    days = report["days"]
    labels = [d["day"][5:] for d in days]
    spend_chart = _bars_svg(
        "Daily spend (micro-USD): this week vs the week before",
        labels,
        [
            ("This week", "#2563eb", [d["costMicroUsd"] for d in days]),
            ("Previous week", "#94a3b8", [d["costMicroUsd"] for d in report["baselineDays"]]),
        ],
    )
    movers = report["topMovers"]
    movers_chart = _bars_svg(
        "Top movers by cost change (micro-USD)",
        [f"{m['dimension']}:{m['key']}"[:18] for m in movers],
        [("Cost increase", "#dc2626", [max(0, m["costDeltaMicroUsd"]) for m in movers])],
    )
    rows = "".join(
        f"<tr><td>{escape(m['dimension'])}</td><td>{escape(m['key'])}</td><td>{m['previousCostUsd']}</td>"
        f"<td>{m['currentCostUsd']}</td><td>{m['costDeltaUsd']}</td><td>{m['shareOfChange'] or '—'}</td>"
        f"<td>{'new' if m['isNew'] else ''}</td></tr>"
        for m in movers
    )
    budget = report["budgetStatus"]
    alerts = report["alerts"]
    week, base = report["week"], report["baseline"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Weekly executive report · {escape(report["workspaceId"])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;color:#0f172a}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #e2e8f0;padding:4px;text-align:left}}
.kpi{{display:inline-block;margin-right:2em}}.kpi b{{display:block;font-size:1.4em}}</style></head>
<body>
<h1>Weekly executive report</h1>
<p>Week {week["from"]} – {week["to"]} (UTC) against {base["from"]} – {base["to"]}.</p>
<div class="kpi">Spend<b>${cur["costUsd"]}</b>was ${prev["costUsd"]} ({delta["costChangeRatio"] or "n/a"})</div>
<div class="kpi">Requests<b>{cur["requests"]}</b>was {prev["requests"]}</div>
<div class="kpi">Tokens<b>{cur["tokens"]}</b>was {prev["tokens"]}</div>
<div class="kpi">Cost per request<b>${cur["costPerRequestUsd"] or "—"}</b>was ${prev["costPerRequestUsd"] or "—"}</div>
<h2>Daily spend</h2>{spend_chart}
<h2>Top movers</h2>{movers_chart}
<table><tr><th>Dimension</th><th>Key</th><th>Before (USD)</th><th>Now (USD)</th><th>Change</th>
<th>Share</th><th></th></tr>{rows}</table>
<h2>Budget and alerts</h2>
<p>Budget warning: {"yes" if budget["budgetWarning"] else "no"}
· exceeded: {"yes" if budget["budgetExceeded"] else "no"}
· enforcement: {escape(budget["enforcement"])}
· alerts this week: {alerts["week"]} (previous week: {alerts["baseline"]})</p>
</body></html>
"""


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """OWASP's CSV-injection rule: a text cell a spreadsheet could read as a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class _SafeWriter:
    def __init__(self, out: io.StringIO) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: list[Any]) -> None:
        self._writer.writerow([csv_cell(v) for v in row])


def board_pack_csv(pack: dict[str, Any]) -> str:
    out = io.StringIO()
    w = _SafeWriter(out)
    w.writerow(["section", "dimension", "key", "cost_usd", "cost_micro_usd", "requests", "tokens"])
    if pack["notice"]:
        w.writerow(["notice", "", pack["notice"], "", "", "", ""])
    r, s = pack["range"], pack["summary"]
    w.writerow(
        ["summary", "range", f"{r['from']}/{r['to']}", s["costUsd"], s["costMicroUsd"], s["requests"], s["tokens"]]
    )
    for day in pack["trend"]:
        w.writerow(["trend", "day", day["day"], day["costUsd"], day["costMicroUsd"], day["requests"], day["tokens"]])
    for dimension, drivers in pack["topDrivers"].items():
        for d in drivers:
            w.writerow(["top_driver", dimension, d["key"], d["costUsd"], d["costMicroUsd"], d["requests"], d["tokens"]])
    for event in pack["budgetHistory"]:
        w.writerow(["budget_history", event["type"], event["at"], "", "", "", event["summary"]])
    return out.getvalue()


def _latin1(text: str) -> str:
    return text.replace("→", "->").replace("–", "-").replace("—", "-").encode("latin-1", "replace").decode("latin-1")


def board_pack_pdf(pack: dict[str, Any]) -> bytes:
    pdf = FPDF()
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Opsmeter board pack", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    r, s = pack["range"], pack["summary"]

    def line(text: str) -> None:
        pdf.multi_cell(0, 6, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    line(f"Workspace {pack['workspaceId']} - {r['from']} to {r['to']} (UTC, dataMode={pack['dataMode']})")
    if pack["notice"]:
        pdf.set_font("Helvetica", "B", 10)
        line(f"{pack['notice']}: detail older than {pack['rawRetentionDays']} days is summarised or gone.")
        pdf.set_font("Helvetica", "", 10)
    pdf.set_font("Helvetica", "B", 12)
    line("Summary")
    pdf.set_font("Helvetica", "", 10)
    per_request = s["costPerRequestUsd"] or "-"
    line(f"Spend ${s['costUsd']} - {s['requests']} requests - {s['tokens']} tokens - ${per_request} per request")
    sections: list[tuple[str, list[str]]] = [
        ("Trend (per UTC day)", [f"{d['day']}: ${d['costUsd']} - {d['requests']} requests" for d in pack["trend"]]),
        *(
            (f"Top drivers by {dim}", [f"{d['key']}: ${d['costUsd']} - {d['requests']} requests" for d in drivers])
            for dim, drivers in pack["topDrivers"].items()
        ),
        ("Budget history", [f"{e['at']} {e['type']}: {e['summary']}" for e in pack["budgetHistory"]] or ["No events."]),
    ]
    for title, lines in sections:
        pdf.set_font("Helvetica", "B", 12)
        line(title)
        pdf.set_font("Helvetica", "", 10)
        for text in lines:
            line(text)
    return bytes(pdf.output())
