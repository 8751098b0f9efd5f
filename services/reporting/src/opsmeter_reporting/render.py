"""Reports rendered from their JSON: the weekly HTML page (inline SVG, no scripts), board pack CSV and PDF.

Numbers read as people read them (the console uses the same formats): ``$13.22``, ``4.6M tokens``,
``+134 %``. The PDF's charts are drawn by matplotlib and its tables by fpdf2.
"""

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

DIMENSION_TITLES = {
    "model": "Model",
    "provider": "Provider",
    "endpointTag": "Endpoint",
    "userId": "User",
    "promptVersion": "Prompt version",
}


def money(usd: str | Decimal | float | int | None) -> str:
    """``$13.22``, ``$1,204.50``; under a cent, two significant digits (``$0.0042``); ``-`` when absent."""
    if usd is None or usd == "":
        return "-"
    value = Decimal(str(usd))
    if value == 0 or abs(value) >= Decimal("0.01"):
        return f"{'-' if value < 0 else ''}${abs(value).quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    places = min(6, max(2, 1 - abs(value).adjusted()))
    return f"{'-' if value < 0 else ''}${abs(value).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)}"


def compact(count: int | None) -> str:
    """``231``, ``12.3K``, ``4.6M``."""
    if count is None:
        return "-"
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")):
        if abs(count) >= size:
            scaled = count / size
            text = f"{scaled:.0f}" if abs(scaled) >= 100 else f"{scaled:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return str(count)


def tokens(count: int | None) -> str:
    return f"{compact(count)} tokens"


def change(ratio: str | float | None) -> str:
    """A change ratio as a signed whole percentage: ``1.3359`` → ``+134 %``; no baseline → ``new``."""
    if ratio is None or ratio == "":
        return "new"
    pct = int((Decimal(str(ratio)) * 100).to_integral_value(ROUND_HALF_UP))
    return "0 %" if pct == 0 else f"{'+' if pct > 0 else '-'}{abs(pct):,} %"


def share(ratio: str | float | None) -> str:
    if ratio is None or ratio == "":
        return "-"
    pct = Decimal(str(ratio)) * 100
    return f"{pct.quantize(Decimal('0.1') if abs(pct) < 1 else Decimal(1), ROUND_HALF_UP)} %"


def day_label(day: str) -> str:
    """``2026-11-24`` → ``Nov 24``."""
    on = date.fromisoformat(day[:10])
    return f"{on:%b} {on.day}"


def moment(iso: str) -> str:
    """``2026-11-24T00:00:00Z`` → ``Nov 24, 2026 00:00 UTC``."""
    at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{at:%b} {at.day}, {at.year} {at:%H:%M} UTC"


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
    labels = [day_label(d["day"]) for d in days]
    spend_chart = _bars_svg(
        "Daily spend: this week vs the week before",
        labels,
        [
            ("This week", "#2563eb", [d["costMicroUsd"] for d in days]),
            ("Previous week", "#94a3b8", [d["costMicroUsd"] for d in report["baselineDays"]]),
        ],
    )
    movers = report["topMovers"]
    movers_chart = _bars_svg(
        "Top movers by cost change",
        [f"{m['dimension']}:{m['key']}"[:18] for m in movers],
        [("Cost increase", "#dc2626", [max(0, m["costDeltaMicroUsd"]) for m in movers])],
    )
    rows = "".join(
        f"<tr><td>{escape(m['dimension'])}</td><td>{escape(m['key'])}</td>"
        f"<td class=n>{money(m['previousCostUsd'])}</td>"
        f"<td class=n>{money(m['currentCostUsd'])}</td><td class=n>{money(m['costDeltaUsd'])}</td>"
        f"<td class=n>{share(m['shareOfChange'])}</td>"
        f"<td>{'new' if m['isNew'] else ''}</td></tr>"
        for m in movers
    )
    budget = report["budgetStatus"]
    alerts = report["alerts"]
    week, base = report["week"], report["baseline"]
    spend_change = change(delta["costChangeRatio"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Weekly executive report · {escape(report["workspaceId"])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;color:#0f172a}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #e2e8f0;padding:4px;text-align:left}}
.kpi{{display:inline-block;margin-right:2em}}.kpi b{{display:block;font-size:1.4em}}
.n{{text-align:right;font-variant-numeric:tabular-nums}}</style></head>
<body>
<h1>Weekly executive report</h1>
<p>Week {moment(week["from"])} – {moment(week["to"])} against {moment(base["from"])} – {moment(base["to"])}.</p>
<div class="kpi">Spend<b>{money(cur["costUsd"])}</b>was {money(prev["costUsd"])} ({spend_change})</div>
<div class="kpi">Requests<b>{compact(cur["requests"])}</b>was {compact(prev["requests"])}</div>
<div class="kpi">Tokens<b>{tokens(cur["tokens"])}</b>was {tokens(prev["tokens"])}</div>
<div class="kpi">Cost per request<b>{money(cur["costPerRequestUsd"])}</b>was {money(prev["costPerRequestUsd"])}</div>
<h2>Daily spend</h2>{spend_chart}
<h2>Top movers</h2>{movers_chart}
<table><tr><th>Dimension</th><th>Key</th><th class=n>Before</th><th class=n>Now</th><th class=n>Change</th>
<th class=n>Share</th><th></th></tr>{rows}</table>
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


def _png(figure: Figure) -> io.BytesIO:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=160, bbox_inches="tight")
    out.seek(0)
    return out


def _usd_axis(value: float, _position: int) -> str:
    return money(Decimal(str(round(value, 6))))


def trend_chart(pack: dict[str, Any]) -> io.BytesIO:
    """Spend per UTC day as bars, requests as a line on a second axis."""
    days = pack["trend"]
    figure = Figure(figsize=(8, 3.2))
    ax = figure.add_subplot()
    labels = [day_label(d["day"]) for d in days]
    ax.bar(labels, [d["costMicroUsd"] / 1e6 for d in days], color="#2563eb", label="Spend")
    ax.yaxis.set_major_formatter(FuncFormatter(_usd_axis))
    ax.set_ylabel("Spend")
    ax.spines[["top", "right"]].set_visible(False)
    requests = ax.twinx()
    requests.plot(labels, [d["requests"] for d in days], color="#f59e0b", marker="o", linewidth=1.5, label="Requests")
    requests.set_ylabel("Requests")
    requests.spines[["top"]].set_visible(False)
    step = max(1, -(-len(labels) // 8))
    ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=0, fontsize=8)
    lines = ax.get_legend_handles_labels()[0] + requests.get_legend_handles_labels()[0]
    ax.legend(lines, ["Spend", "Requests"], loc="upper left", frameon=False, fontsize=8)
    return _png(figure)


def drivers_chart(pack: dict[str, Any]) -> io.BytesIO:
    """The top drivers by spend, one horizontal bar chart per dimension."""
    dimensions = [d for d in DIMENSION_TITLES if pack["topDrivers"].get(d)]
    figure = Figure(figsize=(8, 2.2 * max(1, (len(dimensions) + 1) // 2)))
    for i, dimension in enumerate(dimensions):
        ax = figure.add_subplot((len(dimensions) + 1) // 2, 2, i + 1)
        drivers = pack["topDrivers"][dimension][:6][::-1]
        ax.barh(
            [str(d["key"] or "unknown")[:22] for d in drivers],
            [d["costMicroUsd"] / 1e6 for d in drivers],
            color="#2563eb",
        )
        ax.set_title(DIMENSION_TITLES[dimension], fontsize=10, loc="left")
        ax.xaxis.set_major_formatter(FuncFormatter(_usd_axis))
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return _png(figure)


class _BoardPackPdf(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(120)
        self.cell(0, 6, f"Opsmeter board pack - page {self.page_no()}", align="C")


def _heading(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", "B", 13)
    pdf.set_text_color(17, 24, 39)
    pdf.cell(0, 9, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)


def _table(pdf: FPDF, header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> None:
    """A table whose money and count columns (``R`` in ``align``) are right-aligned."""
    with pdf.table(
        text_align=tuple("RIGHT" if a == "R" else "LEFT" for a in align),
        headings_style=FontFace(emphasis="BOLD", fill_color=(243, 244, 246)),
        line_height=6,
        borders_layout="HORIZONTAL_LINES",
        first_row_as_headings=True,
    ) as table:
        for values in [header, *rows]:
            row = table.row()
            for value in values:
                row.cell(_latin1(value))
    pdf.ln(4)


def board_pack_pdf(pack: dict[str, Any]) -> bytes:
    r, s = pack["range"], pack["summary"]
    pdf = _BoardPackPdf()
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_title("Opsmeter board pack")

    pdf.add_page()
    pdf.ln(40)
    pdf.set_font("Helvetica", "B", 28)
    pdf.cell(0, 14, "Board pack", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 13)
    pdf.set_text_color(75, 85, 99)
    pdf.cell(0, 8, _latin1(f"LLM spend, {moment(r['from'])} - {moment(r['to'])}"), new_x="LMARGIN", new_y="NEXT")
    pdf.cell(0, 8, _latin1(f"Workspace {pack['workspaceId']} - {pack['dataMode']} data"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(12)
    pdf.set_text_color(17, 24, 39)
    for label, value in (
        ("Spend", money(s["costUsd"])),
        ("Requests", f"{s['requests']:,}"),
        ("Tokens", tokens(s["tokens"])),
        ("Cost per request", money(s["costPerRequestUsd"])),
    ):
        pdf.set_font("Helvetica", "", 11)
        pdf.cell(50, 9, label)
        pdf.set_font("Helvetica", "B", 16)
        pdf.cell(0, 9, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    if pack["notice"]:
        pdf.ln(8)
        pdf.set_font("Helvetica", "B", 11)
        pdf.set_fill_color(254, 243, 199)
        pdf.multi_cell(
            0,
            7,
            _latin1(
                f"{pack['notice']}: detail older than {pack['rawRetentionDays']} days is kept only as daily summaries "
                f"({pack.get('summaryRetentionDays', '-')} days)."
            ),
            fill=True,
            new_x="LMARGIN",
            new_y="NEXT",
        )

    pdf.set_fill_color(255, 255, 255)
    pdf.add_page()
    _heading(pdf, "Spend trend (per UTC day)")
    if pack["trend"]:
        pdf.image(trend_chart(pack), w=pdf.epw)
        pdf.ln(2)
        _table(
            pdf,
            ["Day", "Spend", "Requests", "Tokens", "Cost per request"],
            [
                [
                    day_label(d["day"]),
                    money(d["costUsd"]),
                    f"{d['requests']:,}",
                    compact(d["tokens"]),
                    money(d["costPerRequestUsd"]),
                ]
                for d in pack["trend"]
            ],
            "LRRRR",
        )
    else:
        pdf.cell(0, 8, "No spend in this range.", new_x="LMARGIN", new_y="NEXT")

    if any(pack["topDrivers"].values()):
        pdf.add_page()
        _heading(pdf, "Top drivers by spend")
        pdf.image(drivers_chart(pack), w=pdf.epw)
        pdf.ln(2)
        total = s["costMicroUsd"] or 1
        for dimension, drivers in pack["topDrivers"].items():
            if not drivers:
                continue
            pdf.set_font("Helvetica", "B", 11)
            pdf.cell(0, 8, DIMENSION_TITLES.get(dimension, dimension), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", "", 10)
            _table(
                pdf,
                [DIMENSION_TITLES.get(dimension, dimension), "Spend", "Share", "Requests"],
                [
                    [
                        str(d["key"] or "unknown"),
                        money(d["costUsd"]),
                        share(d["costMicroUsd"] / total),
                        f"{d['requests']:,}",
                    ]
                    for d in drivers
                ],
                "LRRR",
            )

    _heading(pdf, "Budget history")
    if pack["budgetHistory"]:
        _table(
            pdf,
            ["When", "Event", "Summary"],
            [[moment(e["at"]), e["type"], e["summary"]] for e in pack["budgetHistory"]],
            "LLL",
        )
    else:
        pdf.cell(0, 8, "No budget or spike events in this range.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
