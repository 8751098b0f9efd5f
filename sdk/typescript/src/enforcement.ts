// Runtime enforcement (opt-in): the workspace's runtimeActions (policy engine, GET /v1/runtime/policy with the
// ingest key) applied before a wrapped provider call. With the kill switch on (policyMode "observe") nothing is
// applied and the record says what would have been (metadata.opsmeterAction).

export type RuntimeAction = "none" | "block" | "clamp" | "fallback" | "queue";

export interface RuntimeActions {
  onBudgetWarning: RuntimeAction;
  onBudgetExceeded: RuntimeAction;
  clampMaxTokens: number | null;
  fallbackModels: Record<string, string>;
  queueMaxWaitSeconds: number;
}

export interface PolicySnapshot {
  policyMode: string;
  budgetWarning: boolean;
  budgetExceeded: boolean;
  resetsAt: number | null;
  actions: RuntimeActions;
}

export interface Decision {
  action: RuntimeAction;
  mode: "applied" | "observed";
  params: Record<string, unknown>;
  detail: string;
}

export class BudgetExceededError extends Error {
  readonly action: RuntimeAction;
  constructor(message: string, action: RuntimeAction) {
    super(message);
    this.name = "BudgetExceededError";
    this.action = action;
  }
}

const ACTIONS: RuntimeAction[] = ["none", "block", "clamp", "fallback", "queue"];
const action = (value: unknown): RuntimeAction => (ACTIONS.includes(value as RuntimeAction) ? (value as RuntimeAction) : "none");

export function snapshotFrom(body: Record<string, any>): PolicySnapshot {
  const actions = (body.runtimeActions ?? {}) as Record<string, any>;
  const ends = ((body.exceededWindows ?? []) as Array<Record<string, any>>)
    .map((w) => Date.parse(String(w.periodEnd)))
    .filter((t) => Number.isFinite(t));
  return {
    policyMode: typeof body.policyMode === "string" ? body.policyMode : "enforce",
    budgetWarning: Boolean(body.budgetWarning),
    budgetExceeded: Boolean(body.budgetExceeded),
    resetsAt: ends.length ? Math.max(...ends) : null,
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

export class RuntimePolicy {
  private snapshotValue: PolicySnapshot | null = null;
  private snapshotAt = 0;
  private lastTry = -Infinity;
  private failures = 0;
  private inFlight: Promise<PolicySnapshot | null> | null = null;
  private staleLogged = false;

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
    if (Date.now() - this.lastTry >= every) void this.refresh();
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
    if (this.source.flagsAt > this.snapshotAt) {
      const flags = this.source.flags;
      state = { ...snapshot, policyMode: flags.policyMode, budgetWarning: flags.budgetWarning, budgetExceeded: flags.budgetExceeded };
    }
    // every window the last answer saw exceeded has ended since: the budget is available again
    if (state.budgetExceeded && state.resetsAt !== null && newest < state.resetsAt && state.resetsAt <= now) {
      state = { ...state, budgetExceeded: false };
    }
    return state;
  }

  decide(provider: string, params: Record<string, unknown>, tokensParam: string): Decision | null {
    const state = this.enabled ? this.state() : null;
    return state ? decide(state, provider, params, tokensParam) : null;
  }

  /** For an applied "queue": wait (polling the policy) until the action lifts or the deadline; throws then. */
  async waitInQueue(provider: string, params: Record<string, unknown>, tokensParam: string): Promise<Decision | null> {
    const state = this.state();
    let waitMs = (state?.actions.queueMaxWaitSeconds ?? 0) * 1000;
    if (state?.resetsAt) waitMs = Math.min(waitMs, Math.max(0, state.resetsAt - Date.now()) + 1000);
    const deadline = Date.now() + waitMs;
    let decision = this.decide(provider, params, tokensParam);
    while (decision && decision.action === "queue" && decision.mode === "applied") {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new BudgetExceededError("the workspace budget is exceeded and did not reset within the queue's deadline", "queue");
      }
      await sleep(Math.min(left, Math.max(200, Math.min(this.refreshIntervalMs, 10_000))));
      await this.refresh();
      decision = this.decide(provider, params, tokensParam);
    }
    return decision;
  }
}

/** What the workspace's runtime actions do to a call with these params in this state (null: nothing). */
export function decide(
  state: PolicySnapshot,
  provider: string,
  params: Record<string, unknown>,
  tokensParam: string,
): Decision | null {
  const chosen = state.budgetExceeded
    ? state.actions.onBudgetExceeded
    : state.budgetWarning
      ? state.actions.onBudgetWarning
      : "none";
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
    detail = state.budgetExceeded ? "budget exceeded" : "budget warning";
  } else {
    detail = `wait up to ${state.actions.queueMaxWaitSeconds}s for the budget window to reset`;
  }
  return { action: chosen, mode, params: mode === "applied" ? next : { ...params }, detail };
}
