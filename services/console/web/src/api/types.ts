// The services' answers as the console reads them. Their routes return JSON built by hand (their
// OpenAPI schemas leave answers untyped), so these mirror the views in each service's api/ package.

export type DataMode = "real" | "demo" | "test";
export type PlanTier = "free" | "starter" | "pro" | "team" | "enterprise";

export interface UsageRow {
  key: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  costUsd: string;
  costMicroUsd: number;
}
/** Whether an answer reaches back before the plan's raw-event window (SPEC §8: "Retention window applied"). */
export interface RetentionNotice {
  retentionWindowApplied: boolean;
  rawRetentionDays: number;
  notice: string | null;
}

export interface Usage extends RetentionNotice {
  workspaceId: string;
  from: string;
  to: string;
  groupBy: string;
  dataMode: DataMode;
  /** `unpricedRequests`: calls stored at $0 because no price covered their model (and not re-priced since). */
  totals: Omit<UsageRow, "key"> & { unpricedRequests: number };
  rows: UsageRow[];
  /** Events the gateway refused in the window, by reason, across data modes (to the hour). */
  rejections: { total: number; rateLimited: number; invalidPayload: number; planLimitReached: number; budgetExceeded: number };
}

export interface BudgetWindow {
  limitUsd: string | null;
  currentSpendUsd: string;
  utilizationRatio: number;
  isWarning: boolean;
  isExceeded: boolean;
  periodStart: string;
  periodEnd: string;
}
export interface WorkspaceStatus {
  workspaceId: string;
  isPlanLimitReached: boolean;
  telemetryPaused: boolean;
  providerCallsContinue: boolean;
  budgetWarning: boolean;
  budgetExceeded: boolean;
  isBudgetWarning: boolean;
  isBudgetExceeded: boolean;
  policyMode: "enforce" | "observe";
  severity: "ok" | "warning" | "critical";
  plan: {
    planTier: PlanTier;
    planName: string;
    currentRequestCount: number;
    planRequestLimit: number | null;
    remainingRequestCount: number | null;
    periodStart: string;
    periodEnd: string;
  };
}

export interface SpendWindow {
  periodStart: string;
  periodEnd: string;
  currentSpendUsd: string;
  currentSpendMicroUsd: number;
  budget: BudgetWindow | null;
}
export interface Spend {
  workspaceId: string;
  budgetWarning: boolean;
  budgetExceeded: boolean;
  policyMode: "enforce" | "observe";
  enforcement: "advisory" | "hard_stop";
  warningThresholdRatio: number;
  projectedEndOfPeriodUsd: string | null;
  projectedExhaustAt: string | null;
  daily: SpendWindow;
  monthly: SpendWindow;
  /** Every scoped budget in its current window: one crossing sets the workspace's flags. */
  scoped: ScopedSpend[];
}
export interface ScopedSpend extends BudgetWindow {
  dimension: "endpointTag" | "model" | "userId";
  value: string;
  window: "daily" | "monthly";
}

export interface Audit {
  version: number;
  changedBy: { credentialId: string | null; role: string | null };
}
export interface ScopedBudget {
  dimension: "endpointTag" | "model" | "userId";
  value: string;
  dailyUsd: string | null;
  monthlyUsd: string | null;
}
export interface Budgets extends Audit {
  dailyUsd: string | null;
  monthlyUsd: string | null;
  warningThresholdRatio: number;
  alertThresholds: number[];
  scoped: ScopedBudget[];
}
export interface Policy extends Audit {
  enforcement: "advisory" | "hard_stop";
  killSwitch: boolean;
  policyMode: "enforce" | "observe";
}
export interface UnitCostRule {
  id: string;
  metric: "costPerRequest" | "costPer1kTokens";
  maxUsd: string;
  model: string | null;
  endpointTag: string | null;
  windowMinutes: number;
  minRequests: number;
  enabled: boolean;
}
export interface Rules extends Audit {
  rules: UnitCostRule[];
}

export type AlertMode = "immediate" | "daily_summary" | "weekly_summary";
export type AlertFamily = "budget" | "unit_cost" | "spike" | "policy";
export type AlertChannel =
  | { type: "webhook"; id: string; url: string; secretHint?: string; enabled: boolean }
  | { type: "slack"; id: string; urlHint?: string; enabled: boolean }
  | { type: "email"; id: string; to: string[]; enabled: boolean };
export interface AlertSettings {
  modes: Partial<Record<AlertFamily, AlertMode>>;
  schedule: { sendTime: string; timezone: string };
  cooldownSeconds: number;
  weeklyExecutiveReport: boolean;
  channels: AlertChannel[];
  version: number;
}
export interface SettingsHistory {
  workspaceId: string;
  changes: { at: string; version: number; sections: string[]; changedBy: { credentialId: string; role: string }; summary: string }[];
}
export interface AlertLogEntry {
  alertId?: string;
  title?: string;
  severity?: string;
  status?: string;
  /** With status plan_required: the plan the alert needs to be delivered. */
  requiredPlan?: PlanTier | null;
  createdAt?: string;
  raisedAt?: string;
  deliveries?: { channelId?: string; status?: string; attempts?: unknown[] }[];
  [key: string]: unknown;
}

export interface ApiKey {
  apiKeyId: string;
  prefix: string;
  name: string;
  createdAt: string | null;
  lastUsedAt: string | null;
  revoked: boolean;
  revokedAt: string | null;
}

export interface AdminToken {
  adminTokenId: string;
  prefix: string;
  role: "owner" | "admin" | "member";
  name: string;
  createdAt: string | null;
  lastUsedAt: string | null;
  revoked: boolean;
  revokedAt: string | null;
}

export interface WorkspacePlan {
  workspaceId: string;
  planTier: PlanTier;
  rateLimitPerMinute: number | null;
  monthlyRequestQuota: number | null;
}
export interface Subscription {
  workspaceId: string;
  plan: PlanTier | null;
  status: string | null;
  subscriptionId: string | null;
  renewsAt: string | null;
  endsAt: string | null;
  updatedAt: string | null;
  testMode: boolean;
  pendingChange: { status: "pending_webhook"; plan: PlanTier; requestedAt: string } | null;
}
export interface ChangePlanAnswer {
  status: string;
  plan?: PlanTier;
  endsAt?: string | null;
  pending_webhook?: { endsAt?: string | null };
  [key: string]: unknown;
}

export interface Totals {
  costUsd: string;
  costMicroUsd: number;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  tokens: number;
  costPerRequestUsd: string | null;
  costPerRequestMicroUsd: number | null;
}
export interface Driver {
  dimension: string;
  key: string;
  currentCostUsd: string;
  previousCostUsd: string;
  costDeltaUsd: string;
  costDeltaMicroUsd: number;
  currentRequests: number;
  previousRequests: number;
  shareOfChange: string | null;
  isNew: boolean;
}
export interface Money {
  usd: string;
  microUsd: number;
}
export interface Spike extends RetentionNotice {
  workspaceId: string;
  window: string | null;
  current: Totals & { from: string; to: string };
  previous: Totals & { from: string; to: string };
  delta: {
    costUsd: string;
    costMicroUsd: number;
    costChangeRatio: string | null;
    requests: number;
    tokens: number;
    costPerRequestUsd: string | null;
  };
  drivers: Record<string, Driver[]>;
  newDrivers: Driver[];
  decomposition: { segment: string; volume: Money; unitCost: Money; mix: Money; total: Money };
}

export interface Series {
  bucket: "hour" | "day";
  totals: { requests: number; errors: number; tokens: number; costMicroUsd: number };
  buckets: { at: string; requests: number; errors: number; costMicroUsd: number }[];
  points: { at: string; key: string; requests: number; costMicroUsd: number }[];
}

export interface RawEvent {
  eventId: string;
  occurredAt: string;
  provider: string;
  model: string;
  endpointTag: string;
  userId: string;
  promptVersion: string;
  status: string;
  errorCode: string;
  inputTokens: number;
  outputTokens: number;
  latencyMs: number | null;
  costUsd: string;
  costMicroUsd: number;
}
export interface RawEvents {
  from: string;
  to: string;
  requests: number;
  errors: number;
  events: RawEvent[];
  nextBefore: string | null;
}

export interface Weekly {
  week: { from: string; to: string };
  baseline: { from: string; to: string };
  summary: { current: Totals; previous: Totals; delta: Spike["delta"] };
  days: (Totals & { day: string })[];
  baselineDays: (Totals & { day: string })[];
  topMovers: Driver[];
  newDrivers: Driver[];
  budgetStatus: { budgetWarning: boolean; budgetExceeded: boolean; enforcement: string; policyMode: string };
  alerts: { week: number; baseline: number; byType: Record<string, number> };
}
export interface BoardPack {
  range: { from: string; to: string };
  retentionWindowApplied: boolean;
  notice: string | null;
  summary: Totals;
  trend: (Totals & { day: string })[];
  topDrivers: Record<string, (Totals & { key: string })[]>;
}
export interface Checklist {
  complete: boolean;
  firstEventAt: string | null;
  items: { id: string; title: string; done: boolean; tip: string | null }[];
}
export interface QualityScore {
  score: number;
  events: number;
  parts: { id: string; weight: number; ratio: string | null; points: string | null; tip: string | null }[];
}

/** What each proxied route answers, by service, method and path (see the services' api/ views). */
export interface Answers {
  alerting: {
    "get /v1/workspaces/{workspace_id}/alerts": { alerts: AlertLogEntry[] };
    "get /v1/workspaces/{workspace_id}/alerts/settings": AlertSettings;
    "post /v1/workspaces/{workspace_id}/alerts/test": { alertId: string; channels: string[] };
    "put /v1/workspaces/{workspace_id}/alerts/settings": AlertSettings;
  };
  billing: {
    "get /v1/billing/portal": { url: string };
    "get /v1/billing/subscription": Subscription;
    "get /v1/workspaces/{workspace_id}/plan": WorkspacePlan;
    "post /v1/billing/checkout": { workspaceId: string; plan: PlanTier; url: string };
    "post /v1/billing/subscription/change-plan": ChangePlanAnswer;
  };
  gateway: {
    "delete /v1/workspaces/{workspace_id}/admin-tokens/{token_id}": null;
    "delete /v1/workspaces/{workspace_id}/api-keys/{key_id}": null;
    "get /v1/workspaces/{workspace_id}/admin-tokens": { adminTokens: AdminToken[] };
    "get /v1/workspaces/{workspace_id}/api-keys": { apiKeys: ApiKey[] };
    "get /v1/workspaces/{workspace_id}/status": WorkspaceStatus;
    "post /v1/workspaces/{workspace_id}/admin-tokens": { adminToken: string; role: string };
    "post /v1/workspaces/{workspace_id}/admin-tokens/{token_id}/rotate": { adminToken: string; role: string; rotatedFrom: string };
    "post /v1/workspaces/{workspace_id}/api-keys": { apiKey: string };
    "post /v1/workspaces/{workspace_id}/api-keys/{key_id}/rotate": { apiKey: string };
  };
  policy: {
    "get /v1/workspaces/{workspace_id}/budgets": Budgets;
    "get /v1/workspaces/{workspace_id}/policy": Policy;
    "get /v1/workspaces/{workspace_id}/rules": Rules;
    "get /v1/workspaces/{workspace_id}/spend": Spend;
    "put /v1/workspaces/{workspace_id}/budgets": Budgets;
    "put /v1/workspaces/{workspace_id}/policy": Policy;
    "put /v1/workspaces/{workspace_id}/rules": Rules;
  };
  reporting: {
    "get /v1/workspaces/{workspace_id}/events": RawEvents;
    "get /v1/workspaces/{workspace_id}/exports/board-pack": BoardPack;
    "get /v1/workspaces/{workspace_id}/onboarding/checklist": Checklist;
    "get /v1/workspaces/{workspace_id}/quality-score": QualityScore;
    "get /v1/workspaces/{workspace_id}/reports/weekly-executive": Weekly;
    "get /v1/workspaces/{workspace_id}/spike": Spike;
    "get /v1/workspaces/{workspace_id}/usage": Usage;
    "get /v1/workspaces/{workspace_id}/settings-history": SettingsHistory;
    "get /v1/workspaces/{workspace_id}/usage/series": Series;
  };
}
