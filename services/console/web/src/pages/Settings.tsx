import { useState, type ReactNode, type SubmitEvent } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, ApiError } from "../api/client";
import type { AlertMode, AlertSettings, Policy, ScopedBudget, UnitCostRule } from "../api/types";
import { useWorkspace } from "../context";
import { Empty, Query } from "../components/States";
import { Time } from "../components/Time";
import { share } from "../format";
import { PLAN_LABELS } from "../plans";

function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    const errors = e.body.errors as { field: string; message: string }[] | undefined;
    return errors?.length ? errors.map((x) => `${x.field}: ${x.message}`).join("; ") : e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

function Section({ title, children, note }: { title: string; children: ReactNode; note?: ReactNode }) {
  return (
    <section className="card">
      <h2>{title}</h2>
      {note && <p className="muted small">{note}</p>}
      {children}
    </section>
  );
}

function Saved({ m }: { m: { isSuccess: boolean; isError: boolean; error: unknown; isPending: boolean } }) {
  if (m.isPending) return <span className="muted">Saving…</span>;
  if (m.isError) return <span className="error" role="alert">{errorText(m.error)}</span>;
  if (m.isSuccess) return <span className="ok" role="status">Saved</span>;
  return null;
}

const usdOrNull = (v: string) => (v.trim() === "" ? null : Number(v));

export function Settings() {
  const { canChange, session } = useWorkspace();
  return (
    <div className="page">
      <div className="page-head"><h1>Settings</h1></div>
      {!canChange && <p className="notice" role="note">You are signed in as a member: settings are read-only. An owner or admin can change them.</p>}
      <fieldset disabled={!canChange} className="plain">
        <BudgetsForm key={`b-${session.workspaceId}`} />
        <PolicyForm />
        <RulesForm />
        <AlertsForm />
        <ApiKeys />
        <MemberTokens />
      </fieldset>
      <DeliveryLog />
      <ChangeHistory />
    </div>
  );
}

/** SPEC §6's audit trail: who changed the budgets, policy or unit-cost rules, when, and to what. */
function ChangeHistory() {
  const { session } = useWorkspace();
  const q = useQuery({
    queryKey: ["settings-history", session.workspaceId],
    queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/settings-history", { query: { limit: 20 } }),
    refetchInterval: 15_000,
  });
  return (
    <Section title="Change history" note="Every change of budgets, policy and unit-cost rules, newest first.">
      <Query q={q} what="the change history">
        {(d) => d.changes.length === 0 ? <Empty>No change yet.</Empty> : (
          <div className="scroll"><table className="table" data-testid="change-history">
            <thead><tr><th>When</th><th>Version</th><th>By</th><th>Change</th></tr></thead>
            <tbody>
              {d.changes.map((c) => (
                <tr key={c.version}>
                  <td><Time iso={c.at} /></td>
                  <td className="num">{c.version}</td>
                  <td>{c.changedBy.role} <span className="muted small">{c.changedBy.credentialId}</span></td>
                  <td>{c.summary}</td>
                </tr>
              ))}
            </tbody>
          </table></div>
        )}
      </Query>
    </Section>
  );
}

function BudgetsForm() {
  const { session } = useWorkspace();
  const client = useQueryClient();
  const q = useQuery({ queryKey: ["budgets", session.workspaceId], queryFn: () => api.get("policy", "/v1/workspaces/{workspace_id}/budgets") });
  const [daily, setDaily] = useState("");
  const [monthly, setMonthly] = useState("");
  const [threshold, setThreshold] = useState("80");
  const [scoped, setScoped] = useState<ScopedBudget[]>([]);
  // The form starts from each new answer (the first, a refetch, the save's): state adjusted while rendering.
  const [loaded, setLoaded] = useState<typeof q.data>(undefined);
  if (loaded !== q.data) {
    setLoaded(q.data);
    if (q.data) {
      setDaily(q.data.dailyUsd ?? "");
      setMonthly(q.data.monthlyUsd ?? "");
      setThreshold(String(Math.round(q.data.warningThresholdRatio * 1000) / 10));
      setScoped(q.data.scoped);
    }
  }
  const save = useMutation({
    mutationFn: () =>
      api.put("policy", "/v1/workspaces/{workspace_id}/budgets", {
        body: {
          dailyUsd: usdOrNull(daily),
          monthlyUsd: usdOrNull(monthly),
          warningThresholdRatio: Number(threshold) / 100,
          alertThresholds: q.data?.alertThresholds ?? [],
          scoped: scoped.map((s) => ({ dimension: s.dimension, value: s.value, dailyUsd: s.dailyUsd === null || s.dailyUsd === "" ? null : Number(s.dailyUsd), monthlyUsd: s.monthlyUsd === null || s.monthlyUsd === "" ? null : Number(s.monthlyUsd) })),
        },
      }),
    onSuccess: (data) => {
      client.setQueryData(["budgets", session.workspaceId], data);
      void client.invalidateQueries({ queryKey: ["spend"] });
    },
  });
  const submit = (e: SubmitEvent) => { e.preventDefault(); save.mutate(); };
  return (
    <Section title="Budgets" note="USD per UTC day and calendar month; only real data counts. Budgets are separate from the plan's request limit.">
      <Query q={q} what="budgets">
        {() => (
          <form onSubmit={submit} className="form">
            <label>Daily budget (USD)<input aria-label="Daily budget (USD)" inputMode="decimal" value={daily} onChange={(e) => setDaily(e.target.value)} placeholder="none" /></label>
            <label>Monthly budget (USD)<input aria-label="Monthly budget (USD)" inputMode="decimal" value={monthly} onChange={(e) => setMonthly(e.target.value)} placeholder="none" /></label>
            <label>Warning threshold (%)<input aria-label="Warning threshold (%)" type="number" min={1} max={100} step={0.1} value={threshold} onChange={(e) => setThreshold(e.target.value)} /></label>
            <p className="muted small full">A budget warns when spend reaches {share(Number(threshold) / 100)} of it and is exceeded at 100 % (the ingest answers' budgetWarning and budgetExceeded).</p>
            <div className="full">
              <h3>Scoped budgets</h3>
              {scoped.length === 0 && <p className="muted small">None: add one for an endpoint, a model or a user.</p>}
              {scoped.map((s, i) => (
                <div className="row" key={i}>
                  <select aria-label="Scope dimension" value={s.dimension} onChange={(e) => setScoped(scoped.map((x, j) => (j === i ? { ...x, dimension: e.target.value as ScopedBudget["dimension"] } : x)))}>
                    <option value="endpointTag">endpoint</option><option value="model">model</option><option value="userId">user</option>
                  </select>
                  <input aria-label="Scope value" value={s.value} onChange={(e) => setScoped(scoped.map((x, j) => (j === i ? { ...x, value: e.target.value } : x)))} placeholder="checkout.ai_summary" />
                  <input aria-label="Scoped daily USD" value={s.dailyUsd ?? ""} onChange={(e) => setScoped(scoped.map((x, j) => (j === i ? { ...x, dailyUsd: e.target.value } : x)))} placeholder="daily USD" />
                  <input aria-label="Scoped monthly USD" value={s.monthlyUsd ?? ""} onChange={(e) => setScoped(scoped.map((x, j) => (j === i ? { ...x, monthlyUsd: e.target.value } : x)))} placeholder="monthly USD" />
                  <button type="button" onClick={() => setScoped(scoped.filter((_, j) => j !== i))}>Remove</button>
                </div>
              ))}
              <button type="button" onClick={() => setScoped([...scoped, { dimension: "endpointTag", value: "", dailyUsd: null, monthlyUsd: null }])}>Add scoped budget</button>
            </div>
            <div className="actions full"><button className="primary" type="submit">Save budgets</button> <Saved m={save} /></div>
          </form>
        )}
      </Query>
    </Section>
  );
}

function PolicyForm() {
  const { session } = useWorkspace();
  const client = useQueryClient();
  const q = useQuery({ queryKey: ["policy", session.workspaceId], queryFn: () => api.get("policy", "/v1/workspaces/{workspace_id}/policy") });
  const [confirming, setConfirming] = useState<boolean | null>(null);
  const save = useMutation({
    mutationFn: (body: { enforcement?: "advisory" | "hard_stop"; killSwitch?: boolean }) => api.put("policy", "/v1/workspaces/{workspace_id}/policy", { body }),
    onSuccess: (data) => { client.setQueryData(["policy", session.workspaceId], data); setConfirming(null); },
  });
  return (
    <Section title="Enforcement and kill switch">
      <Query q={q} what="the policy">
        {(p) => (
          <div className="form">
            <label>Enforcement mode
              <select aria-label="Enforcement mode" value={p.enforcement} onChange={(e) => save.mutate({ enforcement: e.target.value as Policy["enforcement"] })}>
                <option value="advisory">advisory: flags only, telemetry stays active</option>
                <option value="hard_stop">hard stop: ingest answers 402 once a budget is exceeded (a scoped budget: its own events only)</option>
              </select>
            </label>
            <div>
              <div className="label">Workspace kill switch: <strong>{p.killSwitch ? "on (observe mode)" : "off (enforce)"}</strong></div>
              <button type="button" className={p.killSwitch ? "" : "danger"} onClick={() => setConfirming(!p.killSwitch)}>
                {p.killSwitch ? "Turn kill switch off" : "Turn kill switch on"}
              </button>
            </div>
            {confirming !== null && (
              <div className="confirm full" role="dialog" aria-label="Confirm kill switch">
                <p>
                  {confirming
                    ? "Observe mode: rules are still evaluated and events and alerts stay visible, but enforce actions (the hard-stop 402, runtime blocking) are not applied until you turn the kill switch off."
                    : "Back to enforce mode: enforce actions (the hard-stop 402, runtime blocking) apply again."}
                </p>
                <button type="button" className="primary" onClick={() => save.mutate({ killSwitch: confirming })}>{confirming ? "Turn on observe mode" : "Turn off"}</button>{" "}
                <button type="button" onClick={() => setConfirming(null)}>Cancel</button>
              </div>
            )}
            <div className="full"><Saved m={save} /></div>
          </div>
        )}
      </Query>
    </Section>
  );
}

function RulesForm() {
  const { session } = useWorkspace();
  const client = useQueryClient();
  const q = useQuery({ queryKey: ["rules", session.workspaceId], queryFn: () => api.get("policy", "/v1/workspaces/{workspace_id}/rules") });
  const [rules, setRules] = useState<UnitCostRule[]>([]);
  // The form starts from each new answer: state adjusted while rendering.
  const [loaded, setLoaded] = useState<typeof q.data>(undefined);
  if (loaded !== q.data) {
    setLoaded(q.data);
    if (q.data) setRules(q.data.rules);
  }
  const save = useMutation({
    mutationFn: () => api.put("policy", "/v1/workspaces/{workspace_id}/rules", { body: { rules: rules.map((r) => ({ ...r, maxUsd: Number(r.maxUsd) })) } }),
    onSuccess: (data) => client.setQueryData(["rules", session.workspaceId], data),
  });
  const set = (i: number, patch: Partial<UnitCostRule>) => setRules(rules.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  return (
    <Section title="Unit-cost rules" note="Off until an owner or admin adds one: alert when the cost per request or per 1K tokens passes a maximum.">
      <Query q={q} what="rules">
        {() => (
          <form className="form" onSubmit={(e) => { e.preventDefault(); save.mutate(); }}>
            {rules.length === 0 && <p className="muted small full">No unit-cost rule.</p>}
            {rules.map((r, i) => (
              <div className="row full" key={i}>
                <input aria-label="Rule id" value={r.id} onChange={(e) => set(i, { id: e.target.value })} />
                <select aria-label="Metric" value={r.metric} onChange={(e) => set(i, { metric: e.target.value as UnitCostRule["metric"] })}>
                  <option value="costPerRequest">cost per request</option><option value="costPer1kTokens">cost per 1K tokens</option>
                </select>
                <input aria-label="Max USD" value={r.maxUsd} onChange={(e) => set(i, { maxUsd: e.target.value })} />
                <input aria-label="Model (optional)" placeholder="any model" value={r.model ?? ""} onChange={(e) => set(i, { model: e.target.value || null })} />
                <input aria-label="Endpoint (optional)" placeholder="any endpoint" value={r.endpointTag ?? ""} onChange={(e) => set(i, { endpointTag: e.target.value || null })} />
                <label className="check"><input type="checkbox" checked={r.enabled} onChange={(e) => set(i, { enabled: e.target.checked })} /> enabled</label>
                <button type="button" onClick={() => setRules(rules.filter((_, j) => j !== i))}>Remove</button>
              </div>
            ))}
            <div className="actions full">
              <button type="button" onClick={() => setRules([...rules, { id: `rule-${rules.length + 1}`, metric: "costPerRequest", maxUsd: "0.05", model: null, endpointTag: null, windowMinutes: 60, minRequests: 1, enabled: true }])}>Add rule</button>{" "}
              <button className="primary" type="submit">Save rules</button> <Saved m={save} />
            </div>
          </form>
        )}
      </Query>
    </Section>
  );
}

const TIMEZONES: string[] = (() => {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  const zones = intl.supportedValuesOf ? intl.supportedValuesOf("timeZone") : ["Europe/Berlin", "America/New_York"];
  return ["UTC", ...zones.filter((z) => z !== "UTC")];
})();

function AlertsForm() {
  const { session } = useWorkspace();
  const client = useQueryClient();
  const q = useQuery({ queryKey: ["alert-settings", session.workspaceId], queryFn: () => api.get("alerting", "/v1/workspaces/{workspace_id}/alerts/settings") });
  const [draft, setDraft] = useState<AlertSettings | null>(null);
  const [newSecret, setNewSecret] = useState<Record<string, string>>({});
  // The draft starts from each new answer: state adjusted while rendering.
  const [loaded, setLoaded] = useState<typeof q.data>(undefined);
  if (loaded !== q.data) {
    setLoaded(q.data);
    if (q.data) setDraft(q.data);
  }
  const save = useMutation({
    mutationFn: (draft: AlertSettings) => {
      const channels = draft.channels.map((c) => {
        if (c.type === "webhook") return { type: c.type, id: c.id, url: c.url, enabled: c.enabled, ...(newSecret[c.id] ? { secret: newSecret[c.id] } : {}) };
        if (c.type === "slack") return { type: c.type, id: c.id, enabled: c.enabled, ...(newSecret[c.id] ? { url: newSecret[c.id] } : {}) };
        return { type: c.type, id: c.id, to: c.to, enabled: c.enabled };
      });
      const { version: _v, ...rest } = draft;
      return api.put("alerting", "/v1/workspaces/{workspace_id}/alerts/settings", { body: { ...rest, channels } });
    },
    onSuccess: (data) => { client.setQueryData(["alert-settings", session.workspaceId], data); setNewSecret({}); },
  });
  const test = useMutation({ mutationFn: () => api.post("alerting", "/v1/workspaces/{workspace_id}/alerts/test"), onSuccess: () => client.invalidateQueries({ queryKey: ["alert-log"] }) });
  const families: [keyof AlertSettings["modes"], string][] = [["budget", "Budget alerts"], ["unit_cost", "Unit-cost alerts"], ["spike", "Spike alerts"], ["policy", "Policy changes"]];
  return (
    <Section title="Alerts" note="Immediate, daily budget alert summary or weekly budget alert summary, sent at the schedule's time in its timezone. Budget alerts are delivered from Starter up; on Free the delivery log keeps them as not sent.">
      <Query q={q} what="alert settings">
        {() => draft && (
          <form className="form" onSubmit={(e) => { e.preventDefault(); save.mutate(draft); }}>
            {families.map(([family, label]) => (
              <label key={family}>{label}
                <select aria-label={label} value={draft.modes[family] ?? "immediate"} onChange={(e) => setDraft({ ...draft, modes: { ...draft.modes, [family]: e.target.value as AlertMode } })}>
                  <option value="immediate">immediate</option><option value="daily_summary">daily budget alert summary</option><option value="weekly_summary">weekly budget alert summary</option>
                </select>
              </label>
            ))}
            <label>Send time<input aria-label="Send time" type="time" value={draft.schedule.sendTime} onChange={(e) => setDraft({ ...draft, schedule: { ...draft.schedule, sendTime: e.target.value } })} /></label>
            <label>Timezone (IANA)
              <select aria-label="Timezone" value={draft.schedule.timezone} onChange={(e) => setDraft({ ...draft, schedule: { ...draft.schedule, timezone: e.target.value } })}>
                {TIMEZONES.map((z) => <option key={z} value={z}>{z}</option>)}
              </select>
            </label>
            <label>Cooldown (seconds)<input aria-label="Cooldown (seconds)" type="number" min={0} value={draft.cooldownSeconds} onChange={(e) => setDraft({ ...draft, cooldownSeconds: Number(e.target.value) })} /></label>
            <label className="check"><input type="checkbox" checked={draft.weeklyExecutiveReport} onChange={(e) => setDraft({ ...draft, weeklyExecutiveReport: e.target.checked })} /> Email the weekly executive report (Team+)</label>
            <div className="full">
              <h3>Channels</h3>
              {draft.channels.length === 0 && <p className="muted small">No channel yet.</p>}
              {draft.channels.map((c, i) => (
                <div className="row" key={c.id || i}>
                  <span className="pill">{c.type}</span>
                  {c.type === "webhook" && <input aria-label="Webhook URL" value={c.url} onChange={(e) => setDraft({ ...draft, channels: draft.channels.map((x, j) => (j === i ? { ...c, url: e.target.value } : x)) })} />}
                  {c.type === "webhook" && <input aria-label="Webhook secret" type="password" placeholder={c.secretHint ? `secret ${c.secretHint} (keep)` : "signing secret (16+ chars)"} value={newSecret[c.id] ?? ""} onChange={(e) => setNewSecret({ ...newSecret, [c.id]: e.target.value })} />}
                  {c.type === "slack" && <input aria-label="Slack webhook URL" type="password" placeholder={c.urlHint ? `URL ${c.urlHint} (keep)` : "https://hooks.slack.com/…"} value={newSecret[c.id] ?? ""} onChange={(e) => setNewSecret({ ...newSecret, [c.id]: e.target.value })} />}
                  {c.type === "email" && <input aria-label="Email recipients" value={c.to.join(", ")} onChange={(e) => setDraft({ ...draft, channels: draft.channels.map((x, j) => (j === i ? { ...c, to: e.target.value.split(",").map((s) => s.trim()).filter(Boolean) } : x)) })} />}
                  <label className="check"><input type="checkbox" checked={c.enabled} onChange={(e) => setDraft({ ...draft, channels: draft.channels.map((x, j) => (j === i ? { ...c, enabled: e.target.checked } : x)) })} /> enabled</label>
                  <button type="button" onClick={() => setDraft({ ...draft, channels: draft.channels.filter((_, j) => j !== i) })}>Remove</button>
                </div>
              ))}
              <button type="button" onClick={() => setDraft({ ...draft, channels: [...draft.channels, { type: "webhook", id: `webhook-${draft.channels.length + 1}`, url: "https://", enabled: true }] })}>Add webhook</button>{" "}
              <button type="button" onClick={() => setDraft({ ...draft, channels: [...draft.channels, { type: "slack", id: `slack-${draft.channels.length + 1}`, enabled: true }] })}>Add Slack</button>{" "}
              <button type="button" onClick={() => setDraft({ ...draft, channels: [...draft.channels, { type: "email", id: `email-${draft.channels.length + 1}`, to: [], enabled: true }] })}>Add email</button>
            </div>
            <div className="actions full">
              <button className="primary" type="submit">Save alert settings</button> <Saved m={save} />{" "}
              <button type="button" onClick={() => test.mutate()}>Send test</button>{" "}
              {test.isSuccess && <span className="ok" role="status">Test alert queued to {test.data.channels.join(", ")}</span>}
              {test.isError && <span className="error" role="alert">{errorText(test.error)}</span>}
            </div>
          </form>
        )}
      </Query>
    </Section>
  );
}

function DeliveryLog() {
  const { session } = useWorkspace();
  const q = useQuery({ queryKey: ["alert-log", session.workspaceId], queryFn: () => api.get("alerting", "/v1/workspaces/{workspace_id}/alerts", { query: { limit: 20 } }), refetchInterval: 15_000 });
  return (
    <Section title="Delivery log">
      <Query q={q} what="the delivery log">
        {(d) => d.alerts.length === 0 ? <Empty>No alert sent yet.</Empty> : (
          <div className="scroll"><table className="table">
            <thead><tr><th>When</th><th>Alert</th><th>Status</th><th>Deliveries</th></tr></thead>
            <tbody>
              {d.alerts.map((a, i) => (
                <tr key={String(a.alertId ?? i)}>
                  <td><Time iso={(a.createdAt ?? a.raisedAt ?? (a.at as string | undefined))} /></td>
                  <td>{a.title ?? (typeof a.rule === "string" ? a.rule : "")}</td>
                  <td>{a.status === "plan_required" && a.requiredPlan ? `not sent: needs ${PLAN_LABELS[a.requiredPlan]}` : a.status ?? ""}</td>
                  <td>{(a.deliveries ?? []).map((x) => `${x.channelId ?? ""} ${x.status ?? ""} (${x.attempts?.length ?? 0} attempts)`).join(", ")}</td>
                </tr>
              ))}
            </tbody>
          </table></div>
        )}
      </Query>
    </Section>
  );
}

function ApiKeys() {
  const { session } = useWorkspace();
  const client = useQueryClient();
  const q = useQuery({ queryKey: ["api-keys", session.workspaceId], queryFn: () => api.get("gateway", "/v1/workspaces/{workspace_id}/api-keys") });
  const [name, setName] = useState("");
  const [shown, setShown] = useState<string | null>(null);
  const refresh = () => client.invalidateQueries({ queryKey: ["api-keys"] });
  const create = useMutation({
    mutationFn: () => api.post("gateway", "/v1/workspaces/{workspace_id}/api-keys", { body: { name, mode: "live" } }),
    onSuccess: (d) => { setShown(d.apiKey); setName(""); void refresh(); },
  });
  const rotate = useMutation({
    mutationFn: (id: string) => api.post("gateway", "/v1/workspaces/{workspace_id}/api-keys/{key_id}/rotate", { params: { key_id: id } }),
    onSuccess: (d) => { setShown(d.apiKey); void refresh(); },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api.delete("gateway", "/v1/workspaces/{workspace_id}/api-keys/{key_id}", { params: { key_id: id } }),
    onSuccess: refresh,
  });
  return (
    <Section title="API keys" note="Ingest keys (X-API-Key). A new key is shown once; only its hash is stored.">
      {shown && (
        <div className="confirm" role="alert">
          <p><strong>Copy this key now; it is not shown again:</strong></p>
          <code className="secret" data-testid="new-key">{shown}</code> <button type="button" onClick={() => setShown(null)}>Done</button>
        </div>
      )}
      <Query q={q} what="API keys">
        {(d) => (
          <div className="scroll"><table className="table">
            <thead><tr><th>Key</th><th>Name</th><th>Created</th><th>Last used</th><th></th></tr></thead>
            <tbody>
              {d.apiKeys.map((k) => (
                <tr key={k.apiKeyId} className={k.revoked ? "revoked" : ""}>
                  <td><code>{k.prefix}…</code></td>
                  <td>{k.name || "—"}</td>
                  <td><Time iso={k.createdAt} /></td>
                  <td>{k.revoked ? <>revoked <Time iso={k.revokedAt} /></> : <Time iso={k.lastUsedAt} />}</td>
                  <td>{!k.revoked && <><button type="button" onClick={() => rotate.mutate(k.apiKeyId)}>Rotate</button> <button type="button" className="danger" onClick={() => revoke.mutate(k.apiKeyId)}>Revoke</button></>}</td>
                </tr>
              ))}
            </tbody>
          </table></div>
        )}
      </Query>
      <form className="row" onSubmit={(e) => { e.preventDefault(); create.mutate(); }}>
        <input aria-label="New key name" placeholder="name (e.g. checkout-service)" value={name} onChange={(e) => setName(e.target.value)} />
        <button className="primary" type="submit">Create key</button>
        {create.isError && <span className="error">{errorText(create.error)}</span>}
      </form>
    </Section>
  );
}

function MemberTokens() {
  const { session } = useWorkspace();
  const client = useQueryClient();
  const owner = session.role === "owner";
  const q = useQuery({
    queryKey: ["admin-tokens", session.workspaceId],
    queryFn: () => api.get("gateway", "/v1/workspaces/{workspace_id}/admin-tokens"),
    enabled: owner,
  });
  const [role, setRole] = useState<"admin" | "member">("member");
  const [name, setName] = useState("");
  const [shown, setShown] = useState<{ role: string; token: string; own: boolean } | null>(null);
  const refresh = () => client.invalidateQueries({ queryKey: ["admin-tokens"] });
  const create = useMutation({
    mutationFn: () => api.post("gateway", "/v1/workspaces/{workspace_id}/admin-tokens", { body: { role, name } }),
    onSuccess: (d) => { setShown({ role: d.role, token: d.adminToken, own: false }); setName(""); void refresh(); },
  });
  const rotate = useMutation({
    mutationFn: (id: string) => api.post("gateway", "/v1/workspaces/{workspace_id}/admin-tokens/{token_id}/rotate", { params: { token_id: id } }),
    onSuccess: (d) => { setShown({ role: d.role, token: d.adminToken, own: d.role === "owner" }); void refresh(); },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => api.delete("gateway", "/v1/workspaces/{workspace_id}/admin-tokens/{token_id}", { params: { token_id: id } }),
    onSuccess: refresh,
  });
  const failed = [create, rotate, revoke].find((m) => m.isError);
  return (
    <Section title="Members' tokens" note="Only the owner issues, rotates and revokes tokens: admin (may change settings) or member (read-only). A token is shown once; a revoked one stops working at once.">
      {!owner ? <p className="muted small">Signed in as {session.role}: ask the owner for a token.</p> : (
        <>
          {shown && (
            <div className="confirm" role="alert">
              <p><strong>New {shown.role} token; copy it now, it is not shown again:</strong></p>
              <code className="secret" data-testid="new-admin-token">{shown.token}</code>{" "}
              <button type="button" onClick={() => setShown(null)}>Done</button>
              {shown.own && <p className="small">Your old owner token no longer works: sign in again with this one.</p>}
            </div>
          )}
          <Query q={q} what="the tokens">
            {(d) => (
              <div className="scroll"><table className="table">
                <thead><tr><th>Token</th><th>Role</th><th>Name</th><th>Created</th><th>Last used</th><th></th></tr></thead>
                <tbody>
                  {d.adminTokens.map((t) => (
                    <tr key={t.adminTokenId} className={t.revoked ? "revoked" : ""}>
                      <td><code>{t.prefix}…</code></td>
                      <td>{t.role}</td>
                      <td>{t.name || "—"}</td>
                      <td><Time iso={t.createdAt} /></td>
                      <td>{t.revoked ? <>revoked <Time iso={t.revokedAt} /></> : <Time iso={t.lastUsedAt} />}</td>
                      <td>{!t.revoked && <>
                        <button type="button" onClick={() => rotate.mutate(t.adminTokenId)}>Rotate</button>{" "}
                        {t.role !== "owner" && <button type="button" className="danger" onClick={() => revoke.mutate(t.adminTokenId)}>Revoke</button>}
                      </>}</td>
                    </tr>
                  ))}
                </tbody>
              </table></div>
            )}
          </Query>
          <form className="row" onSubmit={(e) => { e.preventDefault(); create.mutate(); }}>
            <select aria-label="Token role" value={role} onChange={(e) => setRole(e.target.value as "admin" | "member")}><option value="member">member</option><option value="admin">admin</option></select>
            <input aria-label="Token name" placeholder="name" value={name} onChange={(e) => setName(e.target.value)} />
            <button className="primary" type="submit">Issue token</button>
          </form>
        </>
      )}
      {failed && <p className="error">{errorText(failed.error)}</p>}
    </Section>
  );
}
