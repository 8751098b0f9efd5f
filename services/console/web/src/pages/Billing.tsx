import { useEffect, useRef, useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError } from "../api/client";
import type { PlanTier, WorkspaceStatus } from "../api/types";
import { useWorkspace } from "../context";
import { Loading, Query } from "../components/States";
import { Time } from "../components/Time";
import { compact } from "../format";

export const PLANS: { tier: PlanTier; name: string; rate: string; quota: string; adds: string }[] = [
  { tier: "free", name: "Free", rate: "120 req/min", quota: "10,000 requests/month", adds: "ingest, budget flags, Investigate Spike" },
  { tier: "starter", name: "Starter", rate: "300 req/min", quota: "100,000 requests/month", adds: "+ budget alerts (immediate, daily and weekly summaries), first-ingest checklist" },
  { tier: "pro", name: "Pro", rate: "600 req/min", quota: "1,000,000 requests/month", adds: "+ tracking quality score" },
  { tier: "team", name: "Team", rate: "3,000 req/min", quota: "10,000,000 requests/month", adds: "+ weekly executive report" },
  { tier: "enterprise", name: "Enterprise", rate: "custom", quota: "custom", adds: "everything, custom limits" },
];

function newIdempotencyKey(): string {
  return `console-${crypto.randomUUID()}`;
}

export function Billing({ status }: { status: WorkspaceStatus | undefined }) {
  const { session, canChange } = useWorkspace();
  const client = useQueryClient();
  const plan = useQuery({ queryKey: ["plan", session.workspaceId], queryFn: () => api.get("billing", "/v1/workspaces/{workspace_id}/plan") });
  // Back from Lemon Squeezy's checkout (?checkout=done): the subscription appears when its webhook arrives.
  const [fromCheckout] = useState(() => new URLSearchParams(window.location.search).get("checkout") === "done");
  const checkoutSeen = useRef(false);
  const sub = useQuery({
    queryKey: ["subscription", session.workspaceId],
    queryFn: () => api.get("billing", "/v1/billing/subscription"),
    refetchInterval: (q) => (q.state.data?.pendingChange || (fromCheckout && !live(q.state.data?.status)) ? 2_000 : false),
  });
  const [chosen, setWanted] = useState<PlanTier | null>(null);
  const change = useMutation({
    mutationFn: () => api.post("billing", "/v1/billing/subscription/change-plan", { body: { plan: wanted }, headers: { "Idempotency-Key": newIdempotencyKey() } }),
    onSuccess: () => client.invalidateQueries({ queryKey: ["subscription"] }),
  });
  const checkout = useMutation({
    mutationFn: () => api.post("billing", "/v1/billing/checkout", { body: { plan: wanted, redirectUrl: `${window.location.origin}/billing?checkout=done` } }),
    onSuccess: (d) => { window.location.assign(d.url); },
  });
  const portal = useMutation({
    mutationFn: () => api.get("billing", "/v1/billing/portal"),
    onSuccess: (d) => window.open(d.url, "_blank", "noopener"),
  });
  const current = plan.data?.planTier;
  // until the user picks one: the plan the workspace is on when it is a paid one (nothing to change yet; or what to
  // subscribe to, to keep it), else Pro
  const wanted: PlanTier = chosen ?? (current && current !== "free" ? current : "pro");
  const pending = sub.data?.pendingChange;
  // The webhook's confirmation clears the pending change: the plan (and the status's counters) changed with it.
  const wasPending = useRef(false);
  useEffect(() => {
    if (wasPending.current && !pending) {
      void client.invalidateQueries({ queryKey: ["plan"] });
      void client.invalidateQueries({ queryKey: ["status"] });
    }
    wasPending.current = !!pending;
  }, [pending, client]);
  const linked = !!sub.data?.subscriptionId;
  const subscribed = linked && live(sub.data?.status);
  useEffect(() => {
    if (fromCheckout && subscribed && !checkoutSeen.current) {
      checkoutSeen.current = true;
      window.history.replaceState(null, "", window.location.pathname);
      void client.invalidateQueries({ queryKey: ["plan"] });
      void client.invalidateQueries({ queryKey: ["status"] });
    }
  }, [fromCheckout, subscribed, client]);
  return (
    <div className="page">
      <div className="page-head"><h1>Billing</h1></div>
      <section className="grid2">
        <div className="card">
          <h2>Plan</h2>
          <Query q={plan} what="the plan">
            {(p) => (
              <dl className="facts">
                <dt>Plan</dt><dd data-testid="current-plan">{PLANS.find((x) => x.tier === p.planTier)?.name ?? p.planTier}</dd>
                <dt>Ingest rate limit</dt><dd>{p.rateLimitPerMinute ? `${p.rateLimitPerMinute.toLocaleString("en-US")} req/min` : "custom"}</dd>
                <dt>Monthly request quota</dt><dd>{p.monthlyRequestQuota ? p.monthlyRequestQuota.toLocaleString("en-US") : "custom"}</dd>
                <dt>Used this month</dt><dd>{status ? `${status.plan.currentRequestCount.toLocaleString("en-US")} (${compact(status.plan.remainingRequestCount)} left)` : "…"}</dd>
              </dl>
            )}
          </Query>
        </div>
        <div className="card">
          <h2>Subscription</h2>
          {sub.isPending ? <Loading what="the subscription" /> : sub.error ? (
            <p className="muted">{sub.error instanceof ApiError && sub.error.status === 503 ? "Billing is not configured on this stack (Lemon Squeezy settings missing)." : String(sub.error)}</p>
          ) : (
            <dl className="facts">
              <dt>Status</dt><dd>{sub.data.status ?? "no subscription"}</dd>
              <dt>Renews</dt><dd><Time iso={sub.data.renewsAt} /></dd>
              <dt>Ends</dt><dd><Time iso={sub.data.endsAt} /></dd>
            </dl>
          )}
          {fromCheckout && !subscribed && (
            <div className="pending" role="status" data-testid="checkout-pending">
              <strong>Waiting for Lemon Squeezy</strong>
              <p>Your subscription shows here, and the plan changes, when Lemon Squeezy's webhook confirms the payment.</p>
            </div>
          )}
          {pending && (
            <div className="pending" role="status" data-testid="pending-change">
              <strong>Change to {PLANS.find((x) => x.tier === pending.plan)?.name ?? pending.plan} pending</strong>
              <p>Waiting for Lemon Squeezy's webhook to confirm (requested <Time iso={pending.requestedAt} />). The plan, status and renewal dates change when it arrives{sub.data?.endsAt ? <>; the current period ends <Time iso={sub.data.endsAt} /></> : null}.</p>
            </div>
          )}
        </div>
      </section>
      <section className="card">
        <h2>{subscribed ? "Change plan" : "Subscribe"}</h2>
        <p className="muted small">
          {subscribed
            ? "Changed in-app; proration, tax and currency come from Lemon Squeezy. The plan changes when Lemon Squeezy's webhook confirms."
            : "You pay on Lemon Squeezy's checkout page; the plan changes when its webhook confirms the payment."}
        </p>
        <div className="scroll"><table className="table">
          <thead><tr><th>Plan</th><th>Ingest rate</th><th>Requests</th><th>Includes</th></tr></thead>
          <tbody>
            {PLANS.map((p) => (
              <tr key={p.tier} className={p.tier === current ? "current" : ""}>
                <td><label className="check"><input type="radio" name="plan" value={p.tier} checked={wanted === p.tier} onChange={() => setWanted(p.tier)} disabled={!canChange} /> {p.name}{p.tier === current && <span className="badge">current</span>}</label></td>
                <td>{p.rate}</td><td>{p.quota}</td><td>{p.adds}</td>
              </tr>
            ))}
          </tbody>
        </table></div>
        <div className="actions">
          {subscribed ? (
            <button className="primary" disabled={!canChange || wanted === current || !!pending || change.isPending} onClick={() => change.mutate()}>
              {change.isPending ? "Requesting…" : `Change to ${PLANS.find((x) => x.tier === wanted)?.name ?? wanted}`}
            </button>
          ) : (
            <button className="primary" disabled={!canChange || sub.isPending || !!sub.error || wanted === "free" || checkout.isPending || checkout.isSuccess} onClick={() => checkout.mutate()}>
              {checkout.isPending || checkout.isSuccess ? "Opening checkout…" : `Subscribe to ${PLANS.find((x) => x.tier === wanted)?.name ?? wanted}`}
            </button>
          )}{" "}
          {!canChange && <span className="muted">Owner or admin only.</span>}
          {change.isError && <span className="error" role="alert">{change.error.message}</span>}
          {checkout.isError && <span className="error" role="alert">{checkout.error.message}</span>}
        </div>
      </section>
      <section className="card">
        <h2>Payment method and invoices</h2>
        <p className="muted small">The billing portal is for payment method and invoices only; change plans above.</p>
        <button onClick={() => portal.mutate()} disabled={!canChange || portal.isPending || !linked}>Open billing portal</button>
        {!canChange && <span className="muted"> Owner or admin only.</span>}
        {portal.isError && <span className="error"> {portal.error instanceof Error ? portal.error.message : String(portal.error)}</span>}
      </section>
    </div>
  );
}

/** A subscription that is still running (Lemon Squeezy's cancelled and expired ones are over or ending). */
function live(status: string | null | undefined): boolean {
  return !!status && status !== "expired" && status !== "cancelled";
}
