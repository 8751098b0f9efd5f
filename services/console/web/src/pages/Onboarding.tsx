import { useQuery } from "@tanstack/react-query";
import { api, ApiError } from "../api/client";
import { useWorkspace } from "../context";
import { Failed, Loading } from "../components/States";
import { Time } from "../components/Time";
import { share } from "../format";
import { planAtLeast, usePlanTier } from "../plans";

function Gate({ plan, what }: { plan: string; what: string }) {
  return (
    <div className="state gate" data-testid={`gate-${plan.toLowerCase()}`}>
      <strong>{what} is on the {plan} plan and above.</strong> <a href="/billing">Upgrade in Billing</a>
    </div>
  );
}

export function Onboarding() {
  const { session } = useWorkspace();
  const { tier: plan, error: planError } = usePlanTier();
  const starter = plan !== undefined && planAtLeast(plan, "starter");
  const pro = plan !== undefined && planAtLeast(plan, "pro");
  const checklist = useQuery({ queryKey: ["checklist", session.workspaceId], queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/onboarding/checklist"), retry: false, enabled: starter });
  const quality = useQuery({ queryKey: ["quality", session.workspaceId], queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/quality-score"), retry: false, enabled: pro });
  const gated = (e: unknown) => e instanceof ApiError && e.reason === "plan_required";
  const none = quality.data?.events === 0; // no real event yet: no score to show
  if (plan === undefined) return <div className="page"><div className="page-head"><h1>Onboarding</h1></div>{planError ? <Failed error={planError} /> : <Loading what="the plan" />}</div>;
  return (
    <div className="page">
      <div className="page-head"><h1>Onboarding</h1></div>
      <section className="card">
        <h2>First-ingest checklist <span className="badge">Starter+</span></h2>
        {!starter || gated(checklist.error) ? <Gate plan="Starter" what="The first-ingest checklist" /> : checklist.error ? <Failed error={checklist.error} /> : checklist.isPending ? <Loading what="the checklist" /> : (
          <>
            <p className="muted small">{checklist.data.firstEventAt ? <>First event <Time iso={checklist.data.firstEventAt} /></> : "No event yet."}</p>
            <ul className="checklist">
              {checklist.data.items.map((i) => (
                <li key={i.id} className={i.done ? "done" : ""}>
                  <span aria-hidden>{i.done ? "✔" : "○"}</span> <strong>{i.title}</strong>{!i.done && i.tip && <div className="muted small">{i.tip}</div>}
                </li>
              ))}
            </ul>
          </>
        )}
      </section>
      <section className="card">
        <h2>Tracking quality score <span className="badge">Pro+</span></h2>
        {!pro || gated(quality.error) ? <Gate plan="Pro" what="The tracking quality score" /> : quality.error ? <Failed error={quality.error} /> : quality.isPending ? <Loading what="the score" /> : (
          <>
            <div className="big" data-testid="quality-score">{none ? "—" : quality.data.score}<span className="muted"> / 100</span></div>
            <p className="muted small">
              {none
                ? "No real event in the last 7 days yet: the score starts with your first production event (dataMode=real); demo and test data do not count."
                : `Over the last 7 days of real events (${quality.data.events.toLocaleString("en-US")}); demo and test data do not count.`}
            </p>
            <div className="scroll"><table className="table">
              <thead><tr><th>Part</th><th className="num">Weight</th><th className="num">Met</th><th className="num">Points</th><th>Tip</th></tr></thead>
              <tbody>
                {quality.data.parts.map((p) => (
                  <tr key={p.id}><td>{p.id.replace(/_/g, " ")}</td><td className="num">{p.weight}</td><td className="num">{none ? "—" : share(p.ratio)}</td><td className="num">{none ? "—" : (p.points ?? "—")}</td><td className="muted small">{p.tip ?? ""}</td></tr>
                ))}
              </tbody>
            </table></div>
          </>
        )}
      </section>
    </div>
  );
}
