import { useMemo, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import { api } from "../api/client";
import type { Driver, Series, Spend, Usage, WorkspaceStatus } from "../api/types";
import { useWorkspace } from "../context";
import { Chart } from "../components/Chart";
import { PeriodPicker } from "../components/PeriodPicker";
import { RetentionNotice } from "../components/RetentionNotice";
import { Kpi } from "../components/Kpi";
import { Empty, Failed, Loading, Query } from "../components/States";
import { Time } from "../components/Time";
import { compact, dateTime, day, microMoney, money, requests, share, tokens } from "../format";
import { previousPeriod, type Period } from "../period";
import { liveRefresh, usePeriod } from "../usePeriod";


function useUsage(period: Period, live = false) {
  const { dataMode, session } = useWorkspace();
  return useQuery({
    queryKey: ["usage", session.workspaceId, dataMode, period],
    queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/usage", { query: { from: period.from, to: period.to, groupBy: "model", dataMode } }),
    ...liveRefresh(live),
  });
}

function useSeries(period: Period, stackBy: "model" | "provider", live = false) {
  const { dataMode, session } = useWorkspace();
  return useQuery({
    queryKey: ["series", session.workspaceId, dataMode, period, stackBy],
    queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/usage/series", { query: { from: period.from, to: period.to, stackBy, dataMode } }),
    ...liveRefresh(live),
  });
}

export function Overview({ status }: { status: WorkspaceStatus | undefined }) {
  const { dataMode, session, timeZone } = useWorkspace();
  const { preset, period, rolling, choose } = usePeriod("7d");
  const [stackBy, setStackBy] = useState<"model" | "provider">("model");
  const previous = useMemo(() => previousPeriod(period), [period]);
  const current = useUsage(period, rolling);
  const before = useUsage(previous);
  const series = useSeries(period, stackBy, rolling);
  const seriesBefore = useSeries(previous, stackBy);
  const spike = useQuery({
    queryKey: ["spike", session.workspaceId, dataMode, period],
    queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/spike", { query: { from: period.from, to: period.to, dataMode } }),
    ...liveRefresh(rolling),
  });
  const spend = useQuery({
    queryKey: ["spend", session.workspaceId],
    queryFn: () => api.get("policy", "/v1/workspaces/{workspace_id}/spend"),
    refetchInterval: 10_000,
  });

  return (
    <div className="page">
      <div className="page-head">
        <h1>Overview</h1>
        <PeriodPicker presets={["24h", "7d", "30d"]} value={preset} onChange={choose} />
      </div>
      <p className="muted small">
        <Time iso={period.from} /> – <Time iso={period.to} /> against the previous {preset === "custom" ? "period of the same length" : preset}; {dataMode} data.
      </p>
      {current.error ? <Failed error={current.error} /> : current.isPending ? <Loading what="usage" /> : (
        <>
          <Kpis usage={current.data} before={before.data} errors={series.data?.totals.errors ?? null} errorsBefore={seriesBefore.data?.totals.errors ?? null} />
          <Refused rejections={current.data.rejections} />
          <Unpriced totals={current.data.totals} workspaceId={session.workspaceId} />
          <RetentionNotice answers={[current.data, before.data]} />
        </>
      )}
      <section className="card">
        <div className="section-head">
          <h2>Cost over time</h2>
          <div className="toggle" role="group" aria-label="Stack by">
            {(["model", "provider"] as const).map((s) => (
              <button key={s} className={stackBy === s ? "active" : ""} aria-pressed={stackBy === s} onClick={() => setStackBy(s)}>by {s}</button>
            ))}
          </div>
        </div>
        <Query q={series} what="the cost series">
          {(s) => (s.points.length === 0 ? <Empty>No {dataMode} events in this period.</Empty> : <CostChart series={s} timeZone={timeZone} />)}
        </Query>
      </section>
      <section className="grid2">
        <Query q={spike} what="the top drivers">
          {(s) => (
            <>
              <TopList title="Top endpoints" drivers={s.drivers.endpointTag} total={s.current.costMicroUsd} />
              <TopList title="Top users" drivers={s.drivers.userId} total={s.current.costMicroUsd} />
              <TopList title="Top prompt versions" drivers={s.drivers.promptVersion} total={s.current.costMicroUsd} />
              <TopList title="Top models" drivers={s.drivers.model} total={s.current.costMicroUsd} />
            </>
          )}
        </Query>
      </section>
      <section className="grid2">
        <div className="card">
          <h2>Budget burn</h2>
          <Query q={spend} what="budgets">
            {(s) => <BudgetBurn spend={s} />}
          </Query>
        </div>
        <div className="card" data-testid="plan-counter">
          <h2>Plan requests this month</h2>
          {status ? <PlanCounter status={status} /> : <Loading what="the plan" />}
        </div>
      </section>
    </div>
  );
}

/** Telemetry the gateway refused in the period (SPEC §5: none is silent); shown only when there was some. */
function Refused({ rejections: r }: { rejections: Usage["rejections"] }) {
  if (r.total === 0) return null;
  const parts = [
    [r.rateLimited, "over the rate limit"],
    [r.invalidPayload, "invalid"],
    [r.planLimitReached, "over the plan's request quota"],
    [r.budgetExceeded, "stopped by a budget's hard-stop"],
  ] as const;
  return (
    <p className="notice" role="status" data-testid="refused-telemetry">
      <strong>{r.total.toLocaleString("en-US")} telemetry {r.total === 1 ? "event was" : "events were"} refused in this period</strong>
      {" "}({parts.filter(([n]) => n > 0).map(([n, what]) => `${n.toLocaleString("en-US")} ${what}`).join(" · ")}; any data mode).
      {" "}Provider calls continued; refused events are in none of the figures below.
    </p>
  );
}

/** Calls to models no price covered count at $0 (ADR 57): say how many, and where to list and price them. */
function Unpriced({ totals, workspaceId }: { totals: Usage["totals"]; workspaceId: string }) {
  const { dataMode } = useWorkspace();
  const count = totals.unpricedRequests;
  if (count === 0) return null;
  const listing = `GET /v1/workspaces/${workspaceId}/prices/unpriced`;
  return (
    <p className="notice" role="status" data-testid="unpriced-calls">
      <strong>{count.toLocaleString("en-US")} {count === 1 ? "call" : "calls"} in this period used a model with no price</strong>
      {" "}and {count === 1 ? "counts" : "count"} as $0 in the spend below.
      {" "}<a href={api.href("reporting", "/v1/workspaces/{workspace_id}/prices/unpriced", { dataMode })} target="_blank" rel="noopener">{listing}</a>
      {" "}lists the models; set their prices with <code>PUT /v1/workspaces/{workspaceId}/prices</code> (workspace prices), then re-price the range.
    </p>
  );
}

function Kpis({ usage, before, errors, errorsBefore }: { usage: Usage; before: Usage | undefined; errors: number | null; errorsBefore: number | null }) {
  const t = usage.totals;
  const b = before?.totals;
  const cpr = t.requests ? t.costMicroUsd / t.requests : null;
  const cprBefore = b && b.requests ? b.costMicroUsd / b.requests : null;
  const errorRate = errors !== null && t.requests ? errors / t.requests : null;
  const errorRateBefore = errorsBefore !== null && b && b.requests ? errorsBefore / b.requests : null;
  if (t.requests === 0 && (!b || b.requests === 0)) {
    return <Empty>No events in this period. Send telemetry (or switch the data mode) and it shows up here within seconds.</Empty>;
  }
  return (
    <section className="kpis">
      <Kpi testId="kpi-spend" label="Spend" value={money(t.costUsd)} current={t.costMicroUsd} previous={b ? b.costMicroUsd : null} />
      <Kpi testId="kpi-requests" label="Requests" value={compact(t.requests)} current={t.requests} previous={b ? b.requests : null} />
      <Kpi testId="kpi-tokens" label="Tokens" value={tokens(t.totalTokens)} current={t.totalTokens} previous={b ? b.totalTokens : null} />
      <Kpi testId="kpi-cpr" label="Cost per request" value={microMoney(cpr)} current={cpr} previous={cprBefore} />
      <Kpi testId="kpi-errors" label="Error rate" value={errorRate === null ? "—" : share(errorRate)} current={errorRate} previous={errorRateBefore} />
    </section>
  );
}

const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#ea580c", "#475569"];

function CostChart({ series, timeZone }: { series: Series; timeZone: string }) {
  const option = useMemo(() => {
    const times = [...new Set(series.points.map((p) => p.at))].sort();
    const totals = new Map<string, number>();
    for (const p of series.points) totals.set(p.key, (totals.get(p.key) ?? 0) + p.costMicroUsd);
    const keys = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([key]) => key);
    const shown = keys.slice(0, 8);
    // Day buckets are UTC days (as in Reports): named in the workspace's zone, a UTC− zone would call each the day before.
    const label = (at: string) => (series.bucket === "hour" ? dateTime(at, timeZone).replace(/^.*, /, "") : day(at, "UTC"));
    const valueOf = (key: string | null, at: string) =>
      series.points.filter((p) => p.at === at && (key === null ? !shown.includes(p.key) : p.key === key)).reduce((s, p) => s + p.costMicroUsd, 0) / 1e6;
    const stacks = [...shown.map((k) => ({ name: k || "unknown", key: k })), ...(keys.length > shown.length ? [{ name: "other", key: null }] : [])];
    return {
      color: PALETTE,
      tooltip: { trigger: "axis", valueFormatter: (v: number) => money(v) },
      legend: { type: "scroll", bottom: 0 },
      grid: { left: 56, right: 16, top: 16, bottom: 48 },
      xAxis: { type: "category", data: times.map(label) },
      yAxis: { type: "value", axisLabel: { formatter: (v: number) => money(v) } },
      series: stacks.map((s) => ({ name: s.name, type: "bar", stack: "cost", data: times.map((at) => valueOf(s.key, at)) })),
    };
  }, [series, timeZone]);
  return <Chart option={option} label="Cost over time" />;
}

function TopList({ title, drivers, total }: { title: string; drivers: Driver[] | undefined; total: number }) {
  const rows = [...(drivers ?? [])].filter((d) => Number(d.currentCostUsd) > 0 || d.currentRequests > 0).sort((a, b) => Number(b.currentCostUsd) - Number(a.currentCostUsd)).slice(0, 6);
  return (
    <div className="card">
      <h2>{title}</h2>
      {rows.length === 0 ? <Empty>Nothing in this period.</Empty> : (
        <div className="scroll"><table className="table">
          <thead><tr><th>Name</th><th className="num">Cost</th><th className="num">Share</th><th className="num">Requests</th></tr></thead>
          <tbody>
            {rows.map((d) => {
              const ratio = total ? (Number(d.currentCostUsd) * 1e6) / total : null;
              return (
                <tr key={d.key}>
                  <td className="name">{d.key || "unknown"}</td>
                  <td className="num">{money(d.currentCostUsd)}</td>
                  <td className="num"><span className="sharebar" style={{ width: `${Math.round((ratio ?? 0) * 60)}px` }} />{share(ratio)}</td>
                  <td className="num">{compact(d.currentRequests)}</td>
                </tr>
              );
            })}
          </tbody>
        </table></div>
      )}
    </div>
  );
}

const SCOPE_LABELS: Record<Spend["scoped"][number]["dimension"], string> = { endpointTag: "Endpoint", model: "Model", userId: "User" };
const SCOPE_NOUNS: Record<Spend["scoped"][number]["dimension"], string> = { endpointTag: "endpoint", model: "model", userId: "user" };

function BudgetBurn({ spend }: { spend: Spend }) {
  // Under hard-stop (kill switch off) an exceeded workspace budget refuses every event, a scoped one its own only.
  const stopping = spend.enforcement === "hard_stop" && spend.policyMode === "enforce";
  const rows = [
    { name: "Today (UTC)", w: spend.daily, projected: null as string | null },
    { name: "This month (UTC)", w: spend.monthly, projected: spend.projectedEndOfPeriodUsd },
  ];
  return (
    <div className="burn">
      {rows.map(({ name, w, projected }) => {
        const limit = w.budget?.limitUsd ? Number(w.budget.limitUsd) : null;
        const spent = Number(w.currentSpendUsd);
        const pct = limit ? Math.min(100, (spent / limit) * 100) : 0;
        const warn = limit ? spend.warningThresholdRatio * 100 : null;
        return (
          <div key={name} className="burn-row">
            <div className="burn-label">
              <strong>{name}</strong>
              <span>{money(spent)}{limit !== null ? ` of ${money(limit)}` : " · no budget set"}</span>
            </div>
            {stopping && w.budget?.isExceeded && <div className="bad small" data-testid="budget-stop">Exceeded under hard-stop: ingest refuses every real event (402) until the {name === "Today (UTC)" ? "day" : "month"} ends or the budget is raised.</div>}
            {limit !== null && (
              <div className={`meter ${w.budget?.isExceeded ? "exceeded" : w.budget?.isWarning ? "warning" : ""}`} role="meter" aria-valuenow={Math.round(pct)} aria-valuemin={0} aria-valuemax={100} aria-label={`${name} budget used`}>
                <div className="fill" style={{ width: `${pct}%` }} />
                {warn !== null && <div className="line" style={{ left: `${warn}%` }} title={`warning at ${share(spend.warningThresholdRatio)}`} />}
              </div>
            )}
            {projected !== null && <div className="muted small">Projected end of month: {money(projected)}</div>}
          </div>
        );
      })}
      {spend.scoped.map((b) => (
        <div key={`${b.dimension}:${b.value}:${b.window}`} className="burn-row" data-testid="scoped-budget">
          <div className="burn-label">
            <span>{SCOPE_LABELS[b.dimension]} <strong>{b.value}</strong> · {b.window === "daily" ? "today (UTC)" : "this month (UTC)"}</span>
            <span className={b.isExceeded ? "bad" : ""}>{money(b.currentSpendUsd)} of {money(b.limitUsd)}{b.isExceeded ? " · exceeded" : b.isWarning ? " · warning" : ""}</span>
          </div>
          {stopping && b.isExceeded && <div className="bad small" data-testid="budget-stop">Exceeded under hard-stop: ingest refuses this {SCOPE_NOUNS[b.dimension]}'s real events (402); other events go in.</div>}
          <div className={`meter ${b.isExceeded ? "exceeded" : b.isWarning ? "warning" : ""}`} role="meter" aria-valuenow={Math.round(Math.min(1, b.utilizationRatio) * 100)} aria-valuemin={0} aria-valuemax={100} aria-label={`${SCOPE_LABELS[b.dimension]} ${b.value} ${b.window} budget used`}>
            <div className="fill" style={{ width: `${Math.min(100, b.utilizationRatio * 100)}%` }} />
          </div>
        </div>
      ))}
      <p className="muted small">Budgets count real data only; warning line at {share(spend.warningThresholdRatio)} of each budget{spend.scoped.length ? "; a scoped budget counts from when it was set" : ""}.</p>
    </div>
  );
}

function PlanCounter({ status }: { status: WorkspaceStatus }) {
  const p = status.plan;
  const pct = p.planRequestLimit ? Math.min(100, (p.currentRequestCount / p.planRequestLimit) * 100) : 0;
  return (
    <div>
      <div className="big">{p.currentRequestCount.toLocaleString("en-US")}{p.planRequestLimit !== null && <span className="muted"> / {p.planRequestLimit.toLocaleString("en-US")}</span>}</div>
      <div className={`meter ${status.isPlanLimitReached ? "exceeded" : pct >= 80 ? "warning" : ""}`}><div className="fill" style={{ width: `${pct}%` }} /></div>
      <p className="muted small">{p.planName} plan · {requests(p.remainingRequestCount)} left · resets <Time iso={p.periodEnd} /></p>
    </div>
  );
}
