import { useEffect, useMemo, useRef, useState } from "react";
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { api } from "../api/client";
import type { Driver, Spike as SpikeAnswer } from "../api/types";
import { useWorkspace } from "../context";
import { Chart } from "../components/Chart";
import { PeriodPicker } from "../components/PeriodPicker";
import { RetentionNotice } from "../components/RetentionNotice";
import { Empty, Query } from "../components/States";
import { Time } from "../components/Time";
import { change, compact, microMoney, money, share, signedMoney, tokens } from "../format";
import { liveRefresh, usePeriod } from "../usePeriod";

const DIMENSION_LABELS: Record<string, string> = { model: "Model", provider: "Provider", endpointTag: "Endpoint", userId: "User", promptVersion: "Prompt version" };

export function Spike() {
  const { dataMode, session } = useWorkspace();
  const { preset, period, rolling, choose } = usePeriod("24h");
  const [drill, setDrill] = useState<Driver | null>(null);
  const q = useQuery({
    queryKey: ["spike", session.workspaceId, dataMode, period],
    queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/spike", { query: { from: period.from, to: period.to, dataMode } }),
    ...liveRefresh(rolling),
  });
  return (
    <div className="page">
      <div className="page-head">
        <h1>Investigate Spike</h1>
        <PeriodPicker presets={["1h", "24h", "7d", "30d"]} value={preset} onChange={(p, range) => { choose(p, range); setDrill(null); }} />
      </div>
      <Query q={q} what="the comparison">
        {(s) => (
          <>
            <p className="muted small">Current <Time iso={s.current.from} /> – <Time iso={s.current.to} /> against previous <Time iso={s.previous.from} /> – <Time iso={s.previous.to} />.</p>
            <RetentionNotice answers={[s]} />
            <section className="kpis">
              <div className="kpi card"><div className="label">Spend now</div><div className="value">{money(s.current.costUsd)}</div><div className="delta">before: {money(s.previous.costUsd)}</div></div>
              <div className="kpi card" data-testid="spike-change"><div className="label">Change</div><div className="value">{signedMoney(s.delta.costUsd)}</div><div className="delta">{change(s.delta.costChangeRatio)}</div></div>
              <div className="kpi card"><div className="label">Requests</div><div className="value">{compact(s.current.requests)}</div><div className="delta">before: {compact(s.previous.requests)}</div></div>
              <div className="kpi card"><div className="label">Tokens</div><div className="value">{tokens(s.current.tokens)}</div><div className="delta">before: {tokens(s.previous.tokens)}</div></div>
              <div className="kpi card"><div className="label">Cost per request</div><div className="value">{money(s.current.costPerRequestUsd)}</div><div className="delta">before: {money(s.previous.costPerRequestUsd)}</div></div>
            </section>
            <section className="card">
              <h2>Why the cost changed: volume × unit cost × mix</h2>
              <Decomposition s={s} />
            </section>
            <section className="grid2">
              {Object.entries(s.drivers).map(([dim, drivers]) => (
                <DriverTable key={dim} dimension={dim} drivers={drivers} onDrill={setDrill} />
              ))}
            </section>
            {drill && <DrillDown driver={drill} s={s} onClose={() => setDrill(null)} />}
          </>
        )}
      </Query>
    </div>
  );
}

function Decomposition({ s }: { s: SpikeAnswer }) {
  const d = s.decomposition;
  const option = useMemo(() => {
    const parts: [string, number][] = [["Volume", d.volume.microUsd], ["Unit cost", d.unitCost.microUsd], ["Mix", d.mix.microUsd], ["Total change", d.total.microUsd]];
    return {
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, valueFormatter: (v: number) => money(v) },
      grid: { left: 64, right: 16, top: 24, bottom: 32 },
      xAxis: { type: "category", data: parts.map((p) => p[0]) },
      yAxis: { type: "value", axisLabel: { formatter: (v: number) => money(v) } },
      series: [
        {
          name: "cost change",
          type: "bar",
          data: parts.map(([, v], i) => ({ value: v / 1e6, itemStyle: { color: i === 3 ? "#111827" : v >= 0 ? "#dc2626" : "#16a34a" } })),
          label: { show: true, position: "top", formatter: (p: { value: number }) => signedMoney(p.value) },
        },
      ],
    };
  }, [d]);
  return (
    <>
      <Chart option={option} label="Cost change decomposition" height={240} />
      <p className="muted small">Volume: more or fewer requests at the old unit costs · Unit cost: each {d.segment}'s cost per request moved · Mix: traffic shifted between {d.segment}s. Sum: {money(d.total.usd)}.</p>
    </>
  );
}

function DriverTable({ dimension, drivers, onDrill }: { dimension: string; drivers: Driver[]; onDrill: (d: Driver) => void }) {
  const rows = drivers.slice(0, 8);
  return (
    <div className="card">
      <h2>{DIMENSION_LABELS[dimension] ?? dimension}</h2>
      {rows.length === 0 ? <Empty>No traffic in either window.</Empty> : (
        <div className="scroll"><table className="table">
          <thead><tr><th>Driver</th><th className="num">Δ cost</th><th className="num">Share of change</th><th className="num">Now</th><th className="num">Before</th></tr></thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.key} className="clickable" onClick={() => onDrill(d)}>
                <td className="name"><button className="link" onClick={() => onDrill(d)}>{d.key || "unknown"}</button>{d.isNew && <span className="badge new">new</span>}</td>
                <td className={`num ${d.costDeltaMicroUsd > 0 ? "bad" : d.costDeltaMicroUsd < 0 ? "good" : ""}`}>{signedMoney(d.costDeltaUsd)}</td>
                <td className="num">{share(d.shareOfChange)}</td>
                <td className="num">{money(d.currentCostUsd)}</td>
                <td className="num">{money(d.previousCostUsd)}</td>
              </tr>
            ))}
          </tbody>
        </table></div>
      )}
    </div>
  );
}

function DrillDown({ driver, s, onClose }: { driver: Driver; s: SpikeAnswer; onClose: () => void }) {
  const ref = useRef<HTMLElement>(null);
  useEffect(() => ref.current?.scrollIntoView({ behavior: "smooth", block: "start" }), [driver]);
  return (
    <section ref={ref} className="card drill" aria-label="Raw events">
      <div className="section-head">
        <h2>Raw events: {DIMENSION_LABELS[driver.dimension] ?? driver.dimension} = {driver.key || "unknown"}</h2>
        <button onClick={onClose}>Close</button>
      </div>
      <div className="grid2">
        <EventList title="Current window" from={s.current.from} to={s.current.to} driver={driver} />
        <EventList title="Previous window" from={s.previous.from} to={s.previous.to} driver={driver} />
      </div>
    </section>
  );
}

function EventList({ title, from, to, driver }: { title: string; from: string; to: string; driver: Driver }) {
  const { dataMode, session } = useWorkspace();
  const q = useInfiniteQuery({
    queryKey: ["events", session.workspaceId, dataMode, from, to, driver.dimension, driver.key],
    initialPageParam: null as string | null,
    queryFn: ({ pageParam }) =>
      api.get("reporting", "/v1/workspaces/{workspace_id}/events", {
        query: { from, to, dimension: driver.dimension as "model", key: driver.key, dataMode, limit: 20, ...(pageParam ? { before: pageParam } : {}) },
      }),
    getNextPageParam: (last) => last.nextBefore,
  });
  const events = q.data?.pages.flatMap((p) => p.events) ?? [];
  return (
    <div>
      <h3>{title}</h3>
      {q.isPending ? <p className="muted">Loading events…</p> : q.error ? <p className="error">{String(q.error)}</p> : events.length === 0 ? <Empty>No events.</Empty> : (
        <>
          <div className="scroll"><table className="table small" data-testid="raw-events">
            <thead><tr><th>Time</th><th>Model</th><th>Endpoint</th><th>User</th><th className="num">Tokens</th><th className="num">Cost</th><th>Status</th></tr></thead>
            <tbody>
              {events.map((e) => (
                <tr key={e.eventId}>
                  <td><Time iso={e.occurredAt} /></td>
                  <td>{e.model}</td>
                  <td className="name">{e.endpointTag}</td>
                  <td className="name">{e.userId}</td>
                  <td className="num">{compact(e.inputTokens + e.outputTokens)}</td>
                  <td className="num">{microMoney(e.costMicroUsd)}</td>
                  <td>{e.status}{e.errorCode ? ` (${e.errorCode})` : ""}</td>
                </tr>
              ))}
            </tbody>
          </table></div>
          {q.hasNextPage && <button onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>{q.isFetchingNextPage ? "Loading…" : "Older events"}</button>}
        </>
      )}
    </div>
  );
}
