import { useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { api, ApiError } from "../api/client";
import { useWorkspace } from "../context";
import { Chart } from "../components/Chart";
import { Kpi } from "../components/Kpi";
import { Empty, Failed, Loading } from "../components/States";
import { Time } from "../components/Time";
import { compact, day, money, share, signedMoney, tokens } from "../format";

const DIMENSIONS: Record<string, string> = { model: "Model", provider: "Provider", endpointTag: "Endpoint", userId: "User", promptVersion: "Prompt version" };
import { dayRange, isoDay } from "../period";
import { PLANS } from "./Billing";
import { planAtLeast, usePlanTier } from "../plans";

export function Reports() {
  return (
    <div className="page">
      <div className="page-head"><h1>Reports</h1></div>
      <WeeklyReport />
      <BoardPackExport />
    </div>
  );
}

function WeeklyReport() {
  const { dataMode, session, timeZone } = useWorkspace();
  const { tier: plan, error: planError } = usePlanTier();
  const included = plan !== undefined && planAtLeast(plan, "team");
  const q = useQuery({
    queryKey: ["weekly", session.workspaceId, dataMode],
    queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/reports/weekly-executive", { query: { dataMode } }),
    retry: false,
    enabled: included,
  });
  if (plan === undefined) return <section className="card"><h2>Weekly executive report</h2>{planError ? <Failed error={planError} /> : <Loading what="the plan" />}</section>;
  if (!included || (q.error instanceof ApiError && q.error.reason === "plan_required")) {
    const team = PLANS.find((p) => p.tier === "team");
    if (!team) throw new Error("PLANS has no Team plan");
    return (
      <section className="card gate" data-testid="weekly-gate">
        <h2>Weekly executive report <span className="badge">Team+</span></h2>
        <p>The weekly executive report (the last completed 7 UTC days against the 7 before, by email or here) is on the Team plan and above.</p>
        <p className="muted small">Your plan ({PLANS.find((p) => p.tier === plan)?.name}) includes: {PLANS.filter((p) => planAtLeast(plan, p.tier)).map((p) => p.adds).join(" ")}.</p>
        <p>Team: {team.rate}, {team.quota}, {team.adds}. <a href="/billing">Upgrade in Billing</a> · the board pack below works on every plan.</p>
      </section>
    );
  }
  return (
    <section className="card">
      <h2>Weekly executive report</h2>
      {q.error ? <Failed error={q.error} /> : q.isPending ? <Loading what="the weekly report" /> : (() => {
        const w = q.data;
        const { current: now, previous: then } = w.summary;
        const option = {
          tooltip: { trigger: "axis", valueFormatter: (v: number) => money(v) },
          legend: { bottom: 0 },
          grid: { left: 56, right: 16, top: 16, bottom: 40 },
          xAxis: { type: "category", data: w.days.map((d) => day(`${d.day}T12:00:00Z`, "UTC")) },
          yAxis: { type: "value", axisLabel: { formatter: (v: number) => money(v) } },
          series: [
            { name: "this week", type: "bar", data: w.days.map((d) => d.costMicroUsd / 1e6), color: "#2563eb" },
            { name: "the 7 days before", type: "bar", data: w.baselineDays.map((d) => d.costMicroUsd / 1e6), color: "#cbd5e1" },
          ],
        };
        return (
          <>
            <p className="muted small">Week <Time iso={w.week.from} /> – <Time iso={w.week.to} /> against the 7 days before ({timeZone}).</p>
            <section className="kpis">
              <Kpi testId="weekly-spend" label="Spend" value={money(now.costUsd)} current={now.costMicroUsd} previous={then.costMicroUsd} against="baseline" />
              <Kpi testId="weekly-requests" label="Requests" value={compact(now.requests)} current={now.requests} previous={then.requests} against="baseline" />
              <Kpi testId="weekly-tokens" label="Tokens" value={tokens(now.tokens)} current={now.tokens} previous={then.tokens} against="baseline" />
              <div className="kpi card"><div className="label">Alerts</div><div className="value">{w.alerts.week}</div><div className="delta">baseline {w.alerts.baseline}</div></div>
            </section>
            <Chart option={option} label="Weekly cost by day" height={220} />
            <h3>Top movers</h3>
            {w.topMovers.length === 0 ? <Empty>No change worth naming.</Empty> : (
              <div className="scroll"><table className="table"><thead><tr><th>Driver</th><th className="num">Δ cost</th><th className="num">Share</th></tr></thead>
                <tbody>{w.topMovers.map((d) => <tr key={d.dimension + d.key}><td>{DIMENSIONS[d.dimension] ?? d.dimension}: {d.key}{d.isNew && <span className="badge new">new</span>}</td><td className="num">{signedMoney(d.costDeltaUsd)}</td><td className="num">{share(d.shareOfChange)}</td></tr>)}</tbody>
              </table></div>
            )}
            <p><a href={api.href("reporting", "/v1/workspaces/{workspace_id}/reports/weekly-executive.html", { dataMode })} target="_blank" rel="noopener">Open the HTML report</a></p>
          </>
        );
      })()}
    </section>
  );
}

function BoardPackExport() {
  const { dataMode, session } = useWorkspace();
  const [fromDay, setFromDay] = useState(() => isoDay(Date.now() - 13 * 86_400_000));
  const [toDay, setToDay] = useState(() => isoDay(Date.now()));
  const valid = dayRange(fromDay, toDay) !== null;
  const q = useQuery({
    queryKey: ["board-pack", session.workspaceId, dataMode, fromDay, toDay],
    queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/exports/board-pack", { query: { from: fromDay, to: toDay, format: "json", dataMode } }),
    enabled: valid,
  });
  const href = (format: "csv" | "pdf") => api.href("reporting", "/v1/workspaces/{workspace_id}/exports/board-pack", { from: fromDay, to: toDay, format, dataMode });
  return (
    <section className="card">
      <h2>Board pack</h2>
      <p className="muted small">Any range of whole UTC days (both included), separate from the weekly report.</p>
      <div className="row">
        <label>From <input type="date" aria-label="Board pack from" value={fromDay} onChange={(e) => setFromDay(e.target.value)} /></label>
        <label>To <input type="date" aria-label="Board pack to" value={toDay} onChange={(e) => setToDay(e.target.value)} /></label>
        <a className={`button ${valid ? "" : "disabled"}`} href={valid ? href("csv") : undefined} download>Download CSV</a>
        <a className={`button primary ${valid ? "" : "disabled"}`} href={valid ? href("pdf") : undefined} download>Download PDF</a>
      </div>
      {!valid ? <p className="error">From must be on or before To.</p> : q.error ? <Failed error={q.error} /> : q.isPending ? <Loading what="the board pack" /> : (
        <>
          {q.data.notice && <p className="notice">{q.data.notice}</p>}
          <p>{money(q.data.summary.costUsd)} over {compact(q.data.summary.requests)} requests ({tokens(q.data.summary.tokens)}).</p>
        </>
      )}
    </section>
  );
}
