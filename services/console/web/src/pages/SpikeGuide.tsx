import { Link } from "react-router-dom";
import { PublicShell } from "./Compare";

const STEPS: { title: string; body: string }[] = [
  { title: "1. Detect", body: "A budget warning or exceeded alert, a spike alert, or the \"Budget warning threshold reached\" toast in the console tells you spend moved. Alerts arrive immediately or in the daily/weekly budget alert summary, on the schedule set in Settings." },
  { title: "2. Investigate", body: "Open Investigate Spike. Pick the window (1 h, 24 h, 7 d, 30 d or a custom range); it compares with the previous window of the same length. Read the drivers per model, provider, endpoint, user and prompt version, ranked by cost delta with their share of the change; \"new\" marks drivers absent before. The volume × unit cost × mix chart says whether more traffic, pricier calls or a shift between models caused it. Click a driver for its raw events in both windows." },
  { title: "3. Contain", body: "Set or tighten daily, monthly or scoped budgets (per endpoint, model or user) in Settings, and choose advisory or hard-stop enforcement. The workspace kill switch puts policy into observe mode: rules are still evaluated and alerts stay visible, but enforce actions are not applied until it is turned off. Provider calls always continue; only telemetry is governed." },
  { title: "4. Review", body: "Export a board pack for the incident's range (CSV or PDF), check the weekly executive report (Team+), and add a unit-cost rule or scoped budget so the same pattern alerts earlier next time." },
];

export function SpikeGuide() {
  return (
    <PublicShell title="AI cost spike guide">
      <article className="page guide">
        <h1>AI cost spike guide</h1>
        <p>What to do when LLM spend jumps: detect, investigate, contain, review.</p>
        {STEPS.map((s) => <section key={s.title} className="card"><h2>{s.title}</h2><p>{s.body}</p></section>)}
        <p><Link to="/">Sign in to the console</Link> · <Link to="/compare">Compare Opsmeter</Link></p>
      </article>
    </PublicShell>
  );
}
