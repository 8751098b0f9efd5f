// Runtime enforcement (opt-in): the workspace's runtimeActions (policy engine, GET /v1/runtime/policy with the
// ingest key) applied before a wrapped provider call. With the kill switch on (policyMode "observe") nothing is
// applied and the record says what would have been (metadata.opsmeterAction).
// A scoped budget (one endpointTag, model or userId) concerns only the calls of its scope: the action applies to a
// call when the workspace's own budget, or a scoped budget matching the call (CallScope), says so. A model budget names
// the model as the gateway does (its modelNormalized): exact from the first recorded call of a model on, once its
// ingest answer has said it (ModelNames); by a local rule (normalizeModel) before that.

export type RuntimeAction = "none" | "block" | "clamp" | "fallback" | "queue";

export interface RuntimeActions {
  onBudgetWarning: RuntimeAction;
  onBudgetExceeded: RuntimeAction;
  clampMaxTokens: number | null;
  fallbackModels: Record<string, string>;
  queueMaxWaitSeconds: number;
}

export interface BudgetFlags {
  warning: boolean;
  exceeded: boolean;
}

/** One scoped budget in its current window (scopedBudgets of the runtime policy). */
export interface ScopedBudget {
  /** "endpointTag", "model" or "userId". */
  dimension: string;
  value: string;
  window: string;
  warning: boolean;
  exceeded: boolean;
  periodEnd: number | null;
}

export interface PolicySnapshot {
  policyMode: string;
  /** Any budget, workspace or scoped, at warning / exceeded. */
  budgetWarning: boolean;
  budgetExceeded: boolean;
  /** When the last exceeded workspace window ends. */
  resetsAt: number | null;
  actions: RuntimeActions;
  /**
   * The workspace's own budgets. Null (or absent) from a server older than scoped budgets: its flags
   * (budgetWarning / budgetExceeded, any budget) then concern every call.
   */
  workspaceBudget?: BudgetFlags | null;
  /** Every scoped budget configured, each concerning only the calls of its endpoint tag, model or user. */
  scopedBudgets?: ScopedBudget[];
}

/** What one call is for, as its record says it: what a scoped budget is matched against. */
export interface CallScope {
  endpointTag: string;
  model: string;
  userId: string;
  /** The gateway's name for the model (ModelNames); absent until an ingest answer has said it. */
  modelNormalized?: string | null;
}

/** The gateway's endpoint tag and user id for a record that gives none. */
const UNKNOWN = "unknown";

/** A call's scope from the values it is recorded with (undefined or empty: the gateway's "unknown"). */
export function callScope(endpointTag: unknown, model: unknown, userId: unknown): CallScope {
  return {
    endpointTag: endpointTag ? String(endpointTag) : UNKNOWN,
    model: model ? String(model) : "",
    userId: userId ? String(userId) : UNKNOWN,
  };
}

const DATE_SUFFIX = /(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$/;

/**
 * A model name as a model-scoped budget names it (the gateway's modelNormalized), as far as the SDK can tell without
 * the gateway's price catalog: trimmed, lowercased, without a provider path ("openai/gpt-4o" -> "gpt-4o") and without
 * a trailing date ("-2024-08-06", "-20241022", "@20241022"). An alias only the catalog knows ("-latest") is not mapped.
 * The rule for a model until an ingest answer has said its exact name (ModelNames).
 */
export function normalizeModel(model: string): string {
  const name = model.trim().toLowerCase();
  return name.slice(name.lastIndexOf("/") + 1).replace(DATE_SUFFIX, "");
}

/** How many models ModelNames keeps the gateway's name of (and the name each asked-for model is recorded with). */
const MODELS_KEPT = 1024;

/** Set `key`; a full map first drops its oldest entry (a model still in use is learned again at its next answer). */
function keep(names: Map<string, string>, key: string, value: string): void {
  if (!names.has(key) && names.size >= MODELS_KEPT) names.delete(names.keys().next().value as string);
  names.set(key, value);
}

const modelKey = (provider: string, model: string): string => `${provider}\u0000${model}`;

/**
 * The gateway's name (modelNormalized) for each model calls are recorded with, as its ingest answers say it: what a
 * model-scoped budget is named by.
 */
export class ModelNames {
  /** (provider, model) as a record sent them -> the modelNormalized its answer said. */
  private readonly saidNames = new Map<string, string>();
  /**
   * (provider, model asked for) -> the model the provider answered with and the call was recorded with ("gpt-4o" ->
   * "gpt-4o-2024-08-06", an alias -> its dated id): that one's name is the call's.
   */
  private readonly recordedAs = new Map<string, string>();

  /** An ingest answer: the gateway calls the record of provider / model (as sent) `normalized`. */
  said(provider: string, model: string, normalized: string): void {
    keep(this.saidNames, modelKey(provider, model), normalized);
  }

  /** A call that asked for `asked` was answered, and recorded, as `model`. */
  recorded(provider: string, asked: string, model: string): void {
    if (asked === model) this.recordedAs.delete(modelKey(provider, asked));
    else keep(this.recordedAs, modelKey(provider, asked), model);
  }

  /** The gateway's name for a call of `provider` asking for `model`; null until an answer has said it. */
  normalized(provider: string, model: string): string | null {
    const recorded = this.recordedAs.get(modelKey(provider, model));
    const said = recorded === undefined ? undefined : this.saidNames.get(modelKey(provider, recorded));
    return said ?? this.saidNames.get(modelKey(provider, model)) ?? null;
  }
}

function concerns(budget: ScopedBudget, call: CallScope): boolean {
  if (budget.dimension === "endpointTag") return budget.value === call.endpointTag;
  if (budget.dimension === "userId") return budget.value === call.userId;
  if (budget.dimension === "model") return budget.value === (call.modelNormalized ?? normalizeModel(call.model));
  return false;
}

/** The budget whose state decides a call's action. */
export interface BudgetHit {
  level: "exceeded" | "warning";
  /** "workspace", or the scoped budget's dimension; null from a server that does not say which budget. */
  budget: string | null;
  value: string | null;
  window: string | null;
  /** When every exceeded budget that concerns the call has reset (null: not known, or a scoped answer's warning). */
  resetsAt: number | null;
}

export function describeBudget(hit: BudgetHit): string {
  if (hit.budget === null) return `budget ${hit.level}`;
  if (hit.budget === "workspace") return `budget ${hit.level} (workspace)`;
  return `budget ${hit.level} (${hit.budget} ${hit.value}, ${hit.window})`;
}

/** The budget state that concerns this call: exceeded over warning; the workspace's before a scoped one. */
export function budgetFor(state: PolicySnapshot, call: CallScope): BudgetHit | null {
  const own = state.workspaceBudget;
  if (!own) {
    // an older server: any budget's flags concern every call
    const level = state.budgetExceeded ? "exceeded" : state.budgetWarning ? "warning" : null;
    return level ? { level, budget: null, value: null, window: null, resetsAt: state.resetsAt } : null;
  }
  const concerned = (state.scopedBudgets ?? []).filter((budget) => concerns(budget, call));
  const exceeded = concerned.filter((budget) => budget.exceeded);
  const first = exceeded[0];
  if (own.exceeded || first) {
    const ends = [...(own.exceeded ? [state.resetsAt] : []), ...exceeded.map((budget) => budget.periodEnd)];
    const known = ends.filter((end): end is number => end !== null);
    const resetsAt = known.length === ends.length ? Math.max(...known) : null;
    if (own.exceeded || !first) return { level: "exceeded", budget: "workspace", value: null, window: null, resetsAt };
    return { level: "exceeded", budget: first.dimension, value: first.value, window: first.window, resetsAt };
  }
  if (own.warning) return { level: "warning", budget: "workspace", value: null, window: null, resetsAt: null };
  const warned = concerned.find((budget) => budget.warning);
  return warned
    ? { level: "warning", budget: warned.dimension, value: warned.value, window: warned.window, resetsAt: null }
    : null;
}

/** Whether an ingest answer's flags (any budget) can stand for the workspace's: an older server, or no scoped budget. */
const takesIngestFlags = (snapshot: PolicySnapshot): boolean =>
  !snapshot.workspaceBudget || !snapshot.scopedBudgets?.length;

/**
 * Every exceeded budget whose window has ended since the answer that said so counts as available again: the
 * workspace's at its exceeded windows' end (resetsAt), each scoped budget at its own periodEnd.
 */
export function lifted(state: PolicySnapshot, answeredAt: number, now: number): PolicySnapshot {
  const ended = (end: number | null): boolean => end !== null && answeredAt < end && end <= now;
  if (!state.workspaceBudget) {
    return state.budgetExceeded && ended(state.resetsAt) ? { ...state, budgetExceeded: false } : state;
  }
  let next = state;
  if (state.workspaceBudget.exceeded && ended(state.resetsAt)) {
    next = { ...next, workspaceBudget: { ...state.workspaceBudget, exceeded: false } };
  }
  const scoped = state.scopedBudgets ?? [];
  if (scoped.some((budget) => budget.exceeded && ended(budget.periodEnd))) {
    next = {
      ...next,
      scopedBudgets: scoped.map((budget) => (budget.exceeded && ended(budget.periodEnd) ? { ...budget, exceeded: false } : budget)),
    };
  }
  return next;
}

export interface Decision {
  action: RuntimeAction;
  mode: "applied" | "observed";
  params: Record<string, unknown>;
  detail: string;
  /** The budget the action answers to. */
  budget?: BudgetHit;
}

/**
 * A budget that concerns the call is exceeded (or at warning) and the workspace's runtime action stopped the call
 * before it was made. `budget` says which: "workspace", or a scoped budget's dimension ("endpointTag", "model",
 * "userId") with its `budgetValue` and `window`; null when the server is older than scoped budgets and does not say.
 */
export class BudgetExceededError extends Error {
  readonly action: RuntimeAction;
  readonly budget: string | null;
  readonly budgetValue: string | null;
  readonly window: string | null;
  constructor(message: string, action: RuntimeAction, hit?: BudgetHit | null) {
    super(message);
    this.name = "BudgetExceededError";
    this.action = action;
    this.budget = hit?.budget ?? null;
    this.budgetValue = hit?.value ?? null;
    this.window = hit?.window ?? null;
  }
}

const UNSAID: BudgetHit = { level: "exceeded", budget: null, value: null, window: null, resetsAt: null };

/** The error an applied "block" throws into the caller, naming the budget it answers to. */
export function blockError(decision: Decision): BudgetExceededError {
  const hit = decision.budget ?? UNSAID;
  const message = `${describeBudget(hit)}: the workspace's runtime action blocks this provider call`;
  return new BudgetExceededError(message, "block", hit);
}

function queueTimedOut(decision: Decision): BudgetExceededError {
  const hit = decision.budget ?? UNSAID;
  return new BudgetExceededError(`${describeBudget(hit)}: it did not reset within the queue's deadline`, "queue", hit);
}

const ACTIONS: RuntimeAction[] = ["none", "block", "clamp", "fallback", "queue"];
const action = (value: unknown): RuntimeAction => (ACTIONS.includes(value as RuntimeAction) ? (value as RuntimeAction) : "none");

function scopedFrom(item: unknown): ScopedBudget | null {
  if (!item || typeof item !== "object") return null;
  const b = item as Record<string, unknown>;
  if (typeof b.dimension !== "string" || typeof b.value !== "string") return null;
  const end = b.periodEnd ? Date.parse(String(b.periodEnd)) : NaN;
  return {
    dimension: b.dimension,
    value: b.value,
    window: typeof b.window === "string" ? b.window : "",
    warning: Boolean(b.warning),
    exceeded: Boolean(b.exceeded),
    periodEnd: Number.isFinite(end) ? end : null,
  };
}

export function snapshotFrom(body: Record<string, any>): PolicySnapshot {
  const actions = (body.runtimeActions ?? {}) as Record<string, any>;
  const ends = ((body.exceededWindows ?? []) as Array<Record<string, any>>)
    .map((w) => Date.parse(String(w.periodEnd)))
    .filter((t) => Number.isFinite(t));
  const own = body.workspaceBudget as unknown;
  const scoped = Array.isArray(body.scopedBudgets) ? (body.scopedBudgets as unknown[]) : [];
  return {
    policyMode: typeof body.policyMode === "string" ? body.policyMode : "enforce",
    budgetWarning: Boolean(body.budgetWarning),
    budgetExceeded: Boolean(body.budgetExceeded),
    resetsAt: ends.length ? Math.max(...ends) : null,
    workspaceBudget:
      own && typeof own === "object"
        ? { warning: Boolean((own as BudgetFlags).warning), exceeded: Boolean((own as BudgetFlags).exceeded) }
        : null,
    scopedBudgets: scoped.map(scopedFrom).filter((budget): budget is ScopedBudget => budget !== null),
    actions: {
      onBudgetWarning: action(actions.onBudgetWarning),
      onBudgetExceeded: action(actions.onBudgetExceeded),
      clampMaxTokens: typeof actions.clampMaxTokens === "number" ? actions.clampMaxTokens : null,
      fallbackModels: actions.fallbackModels && typeof actions.fallbackModels === "object" ? actions.fallbackModels : {},
      queueMaxWaitSeconds: Number(actions.queueMaxWaitSeconds ?? 30) || 30,
    },
  };
}

export interface FlagsSource {
  readonly flags: { budgetWarning: boolean; budgetExceeded: boolean; policyMode: string };
  readonly flagsAt: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * An ingest answer whose budget flags disagree with a snapshot that has scoped budgets asks for the policy again, at
 * most this often (or every refresh interval if that is shorter).
 */
const EARLY_REFRESH_AFTER_MS = 1000;

export class RuntimePolicy {
  private snapshotValue: PolicySnapshot | null = null;
  private snapshotAt = 0;
  private lastTry = -Infinity;
  private failures = 0;
  private inFlight: Promise<PolicySnapshot | null> | null = null;
  private staleLogged = false;
  /** The gateway's name for each model recorded, learned from ingest answers: model budgets match by it. */
  readonly models = new ModelNames();

  constructor(
    readonly enabled: boolean,
    private readonly url: string,
    private readonly apiKey: string,
    private readonly refreshIntervalMs: number,
    private readonly timeoutMs: number,
    private readonly source: FlagsSource,
    private readonly fetchImpl: typeof fetch,
  ) {}

  get snapshot(): PolicySnapshot | null {
    return this.snapshotValue;
  }

  /**
   * Fetch the policy now; the last snapshot if that fails. Never rejects; calls made while a fetch is under way
   * share it (one request at a time).
   */
  refresh(): Promise<PolicySnapshot | null> {
    if (!this.inFlight) {
      this.inFlight = this.load().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  private async load(): Promise<PolicySnapshot | null> {
    this.lastTry = Date.now();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      const answer = await this.fetchImpl(this.url, { headers: { "X-API-Key": this.apiKey }, signal: controller.signal });
      if (answer.status === 200) {
        this.snapshotValue = snapshotFrom((await answer.json()) as Record<string, any>);
        this.snapshotAt = Date.now();
        this.failures = 0;
        this.staleLogged = false;
      } else {
        this.failures += 1;
      }
    } catch {
      this.failures += 1; // keep the last snapshot
    } finally {
      clearTimeout(timer);
    }
    return this.snapshotValue;
  }

  /** Wait for a first snapshot: await it at startup for enforcement to apply from the very first call. */
  async ready(): Promise<void> {
    if (this.enabled && this.snapshotValue === null) await this.refresh();
  }

  /** @deprecated the same as ready(). */
  fresh(): Promise<void> {
    return this.ready();
  }

  /**
   * Before a call, never waiting: refresh in the background when the snapshot is older than the refresh interval.
   * Failed fetches are retried no more often than that (1 s, doubling, while there is no snapshot yet).
   */
  maybeRefresh(): void {
    if (!this.enabled || this.inFlight) return;
    const every = this.snapshotValue
      ? this.refreshIntervalMs
      : Math.min(this.refreshIntervalMs, 1000 * 2 ** Math.max(0, this.failures - 1));
    const since = Date.now() - this.lastTry;
    const early = since >= Math.min(this.refreshIntervalMs, EARLY_REFRESH_AFTER_MS) && this.ingestDisagrees();
    if (since >= every || early) void this.refresh();
  }

  /**
   * An ingest answer newer than a snapshot with scoped budgets has other budget flags than it. Those flags say "any
   * budget", which cannot tell which calls they concern: the policy says it, so it is asked again (in the background).
   */
  private ingestDisagrees(): boolean {
    const snapshot = this.snapshotValue;
    if (!snapshot || takesIngestFlags(snapshot) || this.source.flagsAt <= this.snapshotAt) return false;
    const flags = this.source.flags;
    return flags.budgetWarning !== snapshot.budgetWarning || flags.budgetExceeded !== snapshot.budgetExceeded;
  }

  private state(): PolicySnapshot | null {
    const snapshot = this.snapshotValue;
    if (!snapshot) return null;
    const now = Date.now();
    const newest = Math.max(this.snapshotAt, this.source.flagsAt);
    // Opsmeter has not answered (policy or ingest) for 3 refresh intervals while asked: the snapshot is too old to
    // act on, so enforcement fails open until an answer comes.
    if (now - newest > 3 * this.refreshIntervalMs && this.lastTry > newest) {
      if (!this.staleLogged) {
        this.staleLogged = true;
        console.warn("opsmeter: the runtime policy could not be refreshed; enforcement is off until Opsmeter answers");
      }
      return null;
    }
    let state = snapshot;
    let answeredAt = this.snapshotAt; // when the budget state in hand was said
    if (this.source.flagsAt > this.snapshotAt) {
      const flags = this.source.flags;
      state = { ...snapshot, policyMode: flags.policyMode };
      if (takesIngestFlags(snapshot)) {
        // the ingest answer's flags (any budget) stand for the workspace's: no scoped budget, or an older server
        state = { ...state, budgetWarning: flags.budgetWarning, budgetExceeded: flags.budgetExceeded };
        if (snapshot.workspaceBudget) state.workspaceBudget = { warning: flags.budgetWarning, exceeded: flags.budgetExceeded };
        answeredAt = this.source.flagsAt;
      }
    }
    // every budget the answer saw exceeded whose window has ended since is available again
    return lifted(state, answeredAt, now);
  }

  /**
   * The decision for a call with these params (and this scope: by default its model, for no endpoint tag and no
   * user; its model named as the gateway has said, once it has); null when no action is configured for the budget
   * state that concerns it. Never throws.
   */
  decide(provider: string, params: Record<string, unknown>, tokensParam: string, call?: CallScope): Decision | null {
    if (!this.enabled) return null;
    try {
      const state = this.state();
      if (!state) return null;
      let scope = call ?? callScope(undefined, params.model, undefined);
      if (scope.modelNormalized == null) scope = { ...scope, modelNormalized: this.models.normalized(provider, scope.model) };
      return decide(state, provider, params, tokensParam, scope);
    } catch {
      return null; // enforcement must never break the call: no action
    }
  }

  /** For an applied "queue": wait (polling the policy) until the action lifts or the deadline; throws then. */
  async waitInQueue(
    provider: string,
    params: Record<string, unknown>,
    tokensParam: string,
    call?: CallScope,
  ): Promise<Decision | null> {
    let decision = this.decide(provider, params, tokensParam, call);
    let waitMs = (this.state()?.actions.queueMaxWaitSeconds ?? 0) * 1000;
    const resetsAt = decision?.budget?.resetsAt;
    if (resetsAt) waitMs = Math.min(waitMs, Math.max(0, resetsAt - Date.now()) + 1000);
    const deadline = Date.now() + waitMs;
    while (decision && decision.action === "queue" && decision.mode === "applied") {
      const left = deadline - Date.now();
      if (left <= 0) throw queueTimedOut(decision);
      await sleep(Math.min(left, Math.max(200, Math.min(this.refreshIntervalMs, 10_000))));
      await this.refresh();
      decision = this.decide(provider, params, tokensParam, call);
    }
    return decision;
  }
}

/**
 * What the workspace's runtime actions do to a call with these params in this state (null: nothing). Only the
 * workspace's budgets and the scoped budgets matching `call` (by default: the params' model, no endpoint tag, no
 * user) count.
 */
export function decide(
  state: PolicySnapshot,
  provider: string,
  params: Record<string, unknown>,
  tokensParam: string,
  call?: CallScope,
): Decision | null {
  const hit = budgetFor(state, call ?? callScope(undefined, params.model, undefined));
  if (!hit) return null;
  const chosen = hit.level === "exceeded" ? state.actions.onBudgetExceeded : state.actions.onBudgetWarning;
  if (chosen === "none") return null;
  const mode = state.policyMode === "observe" ? "observed" : "applied";
  const next: Record<string, unknown> = { ...params };
  let detail = "";
  if (chosen === "clamp") {
    const cap = state.actions.clampMaxTokens;
    const asked = params[tokensParam];
    if (cap === null || (typeof asked === "number" && asked <= cap)) return null;
    next[tokensParam] = cap;
    detail = `${tokensParam} ${asked ?? "unset"}->${cap}`;
  } else if (chosen === "fallback") {
    const model = String(params.model);
    const cheaper = state.actions.fallbackModels[model] ?? state.actions.fallbackModels[`${provider}/${model}`];
    if (!cheaper || cheaper === model) return null;
    next.model = cheaper;
    detail = `model ${model}->${cheaper}`;
  } else if (chosen === "block") {
    detail = describeBudget(hit);
  } else {
    detail = `wait up to ${state.actions.queueMaxWaitSeconds}s for the budget window to reset`;
  }
  return { action: chosen, mode, params: mode === "applied" ? next : { ...params }, detail, budget: hit };
}
