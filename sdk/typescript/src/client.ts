// The Opsmeter client: record() puts a record on a bounded queue and returns; a timer-driven sender posts
// batches to POST /v1/ingest/llm-requests. Nothing here throws into the caller.

export interface RecordInput {
  provider: string;
  model: string;
  inputTokens: number;
  outputTokens: number;
  externalRequestId?: string;
  endpointTag?: string;
  promptVersion?: string;
  userId?: string;
  totalTokens?: number;
  cachedInputTokens?: number;
  cacheWriteInputTokens?: number;
  /** Part of cacheWriteInputTokens: the cache writes with a 1-hour TTL (Anthropic), priced at their own rate. */
  cacheWrite1hInputTokens?: number;
  reasoningTokens?: number;
  reportedCostUsd?: string;
  latencyMs?: number;
  status?: "success" | "error";
  errorCode?: string;
  dataMode?: "real" | "test" | "demo";
  environment?: "prod" | "staging" | "dev";
  timestamp?: Date | string;
  metadata?: Record<string, string | number | boolean | null>;
}

export interface WorkspaceFlags {
  budgetWarning: boolean;
  budgetExceeded: boolean;
  telemetryPaused: boolean;
  planLimitReached: boolean;
  policyMode: string;
  reason: string | null;
}

export interface Stats {
  recorded: number;
  sent: number;
  accepted: number;
  duplicates: number;
  dropped: Record<string, number>;
  queueDepth: number;
  batches: number;
  retries: number;
}

export type FlagsCallback = (flags: WorkspaceFlags) => void;

export interface OpsmeterOptions {
  baseUrl?: string;
  timeoutMs?: number;
  maxQueueSize?: number;
  flushAt?: number;
  flushIntervalMs?: number;
  maxBatchEvents?: number;
  maxBatchBytes?: number;
  maxRetries?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  statusCheckIntervalMs?: number;
  onBudgetWarning?: FlagsCallback;
  onBudgetExceeded?: FlagsCallback;
  onPlanLimit?: FlagsCallback;
  /**
   * Send cacheWriteInputTokens on the wire so the gateway prices cache writes as writes (default true). Set false
   * only for an old gateway that rejects the field; writes are then priced as plain input (still inside inputTokens).
   * False withholds cacheWrite1hInputTokens (a part of the writes) too.
   */
  sendCacheWriteTokens?: boolean;
  /** Runtime enforcement of the workspace's runtimeActions before wrapped calls (opt-in). */
  enforcement?: boolean;
  /** Where GET /v1/runtime/policy is served (default: baseUrl). */
  policyUrl?: string;
  policyRefreshIntervalMs?: number;
  fetch?: typeof fetch;
}

import { RuntimePolicy } from "./enforcement.js";
import { BackgroundCalls, wrapAnthropic, wrapOpenAI } from "./wrappers.js";

const BATCH_PATH = "/v1/ingest/llm-requests";
const STATUS_PATH = "/v1/diagnostics/workspace-status";
const MAX_BATCH_EVENTS = 500;
const MAX_BATCH_BYTES = 1024 * 1024;

type Wire = Record<string, unknown>;
type Answer = Record<string, unknown>;

function newRequestId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return `om_${c.randomUUID().replace(/-/g, "")}`;
  return `om_${Date.now().toString(16)}${Math.random().toString(16).slice(2)}${Math.random().toString(16).slice(2)}`;
}

function flagsFrom(body: Answer): WorkspaceFlags {
  return {
    budgetWarning: Boolean(body.budgetWarning ?? body.isBudgetWarning),
    budgetExceeded: Boolean(body.budgetExceeded ?? body.isBudgetExceeded),
    telemetryPaused: Boolean(body.telemetryPaused),
    planLimitReached: Boolean(body.isPlanLimitReached),
    policyMode: typeof body.policyMode === "string" ? body.policyMode : "enforce",
    reason: typeof body.reason === "string" ? body.reason : null,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class Opsmeter {
  readonly apiKey: string;
  readonly baseUrl: string;
  private readonly o: Required<
    Omit<
      OpsmeterOptions,
      "onBudgetWarning" | "onBudgetExceeded" | "onPlanLimit" | "fetch" | "enforcement" | "policyUrl" | "policyRefreshIntervalMs"
    >
  >;
  readonly policy: RuntimePolicy;
  /** Background Responses calls (wrapped clients) still running, recorded when a wrapped retrieve()/cancel() sees them
   * end; those left are recorded as unfinished at shutdown. */
  readonly backgroundCalls = new BackgroundCalls();
  private flagsTime = 0;
  private readonly callbacks: Record<"budgetWarning" | "budgetExceeded" | "planLimitReached", FlagsCallback | undefined>;
  private readonly fetchImpl: typeof fetch;
  private queue: string[] = []; // records encoded by record(): one that cannot be is dropped there, counted
  private inFlight = 0;
  private sending: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pauseTimer: ReturnType<typeof setInterval> | null = null;
  private stopped = false;
  private paused = false;
  private lastStatusCheck = 0;
  private counters = { recorded: 0, sent: 0, accepted: 0, duplicates: 0, batches: 0, retries: 0 };
  private dropped: Record<string, number> = {};
  private logged = new Set<string>();
  private flagsValue: WorkspaceFlags = {
    budgetWarning: false,
    budgetExceeded: false,
    telemetryPaused: false,
    planLimitReached: false,
    policyMode: "enforce",
    reason: null,
  };
  private readonly onExit = (): void => {
    void this.shutdown();
  };

  constructor(apiKey: string, options: OpsmeterOptions = {}) {
    this.apiKey = apiKey;
    this.baseUrl = (options.baseUrl ?? "https://api.opsmeter.io").replace(/\/+$/, "");
    this.o = {
      baseUrl: this.baseUrl,
      timeoutMs: options.timeoutMs ?? 600,
      maxQueueSize: Math.max(1, options.maxQueueSize ?? 20_000),
      flushAt: Math.max(1, options.flushAt ?? 100),
      flushIntervalMs: options.flushIntervalMs ?? 500,
      maxBatchEvents: Math.min(MAX_BATCH_EVENTS, Math.max(1, options.maxBatchEvents ?? MAX_BATCH_EVENTS)),
      maxBatchBytes: Math.min(MAX_BATCH_BYTES, Math.max(1024, options.maxBatchBytes ?? MAX_BATCH_BYTES)),
      maxRetries: options.maxRetries ?? 4,
      backoffBaseMs: options.backoffBaseMs ?? 500,
      backoffMaxMs: options.backoffMaxMs ?? 10_000,
      statusCheckIntervalMs: options.statusCheckIntervalMs ?? 60_000,
      sendCacheWriteTokens: options.sendCacheWriteTokens ?? true,
    };
    this.callbacks = {
      budgetWarning: options.onBudgetWarning,
      budgetExceeded: options.onBudgetExceeded,
      planLimitReached: options.onPlanLimit,
    };
    this.fetchImpl = options.fetch ?? ((...args: Parameters<typeof fetch>) => fetch(...args));
    this.policy = new RuntimePolicy(
      options.enforcement ?? false,
      `${(options.policyUrl ?? this.baseUrl).replace(/\/+$/, "")}/v1/runtime/policy`,
      apiKey,
      options.policyRefreshIntervalMs ?? 10_000,
      this.o.timeoutMs,
      this,
      this.fetchImpl,
    );
    const proc = (globalThis as { process?: { once?: (e: string, f: () => void) => void } }).process;
    proc?.once?.("beforeExit", this.onExit);
  }

  /** Queue one LLM call's telemetry; its externalRequestId, or null if it was dropped. Never throws. */
  record(input: RecordInput): string | null {
    try {
      this.counters.recorded += 1;
      if (!this.apiKey || this.stopped) return this.drop(this.apiKey ? "shutdown" : "disabled"), null;
      if (this.paused) return this.drop("plan_limit_reached"), null;
      const wire: Wire = {};
      for (const [key, value] of Object.entries(input)) {
        if (value === undefined || value === null) continue;
        if (key.startsWith("cacheWrite") && !this.o.sendCacheWriteTokens) continue; // and cacheWrite1hInputTokens
        wire[key] = value instanceof Date ? value.toISOString() : value;
      }
      wire.externalRequestId ??= newRequestId();
      wire.timestamp ??= new Date().toISOString();
      let encoded: string;
      try {
        encoded = JSON.stringify(wire); // a BigInt or a cycle in metadata throws here, never in the sender
      } catch (error) {
        this.logOnce(`unencodable:${String(error)}`, `opsmeter record() dropped a record it cannot encode: ${String(error)}`);
        this.drop("unencodable");
        return null;
      }
      if (this.queue.length >= this.o.maxQueueSize) {
        this.queue.shift();
        this.drop("queue_full");
      }
      this.queue.push(encoded);
      this.schedule(this.queue.length >= this.o.flushAt ? 0 : this.o.flushIntervalMs);
      return wire.externalRequestId as string;
    } catch (error) {
      this.logOnce(`record:${String(error)}`, `opsmeter record() could not queue a record: ${String(error)}`);
      this.drop("client_error");
      return null;
    }
  }

  /** Send everything queued; resolves true when nothing is left queued or in flight within timeoutMs. */
  async flush(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length > 0 || this.inFlight > 0) {
      if (Date.now() >= deadline) return false;
      this.startDrain();
      await Promise.race([this.sending, sleep(Math.max(0, Math.min(100, deadline - Date.now())))]);
    }
    return true;
  }

  /**
   * Flush for up to timeoutMs, then stop; later records are dropped. Also runs on process beforeExit. Background
   * Responses calls still held (never seen to end) are recorded first, without tokens, marked
   * opsmeterBackground: "unfinished".
   */
  async shutdown(timeoutMs = 5_000): Promise<void> {
    if (this.stopped) return;
    const proc = (globalThis as { process?: { off?: (e: string, f: () => void) => void } }).process;
    proc?.off?.("beforeExit", this.onExit);
    try {
      this.backgroundCalls.close();
      await this.flush(timeoutMs);
    } finally {
      this.stopped = true;
      if (this.timer) clearTimeout(this.timer);
      this.stopWatchingPause();
      this.drop("shutdown", this.queue.length);
      this.queue = [];
    }
  }

  stats(): Stats {
    return { ...this.counters, dropped: { ...this.dropped }, queueDepth: this.queue.length };
  }

  get flags(): WorkspaceFlags {
    return this.flagsValue;
  }

  /** When the flags were last updated (Date.now()). */
  get flagsAt(): number {
    return this.flagsTime;
  }

  /** The OpenAI client (v5.6+) to use, its chat completions and Responses API recorded: a copy made by its
   * withOptions() with a recording fetch; calls through the given client are recorded too. */
  wrapOpenAI<T>(client: T): T {
    return wrapOpenAI(this, client);
  }

  /** The same Anthropic client (1.x, with per-request middleware), its messages recorded. */
  wrapAnthropic<T>(client: T): T {
    return wrapAnthropic(this, client);
  }

  // --- the sender ---------------------------------------------------------------------------------------

  private schedule(delayMs: number): void {
    if (this.stopped || this.sending) return;
    if (this.timer && delayMs > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.startDrain();
    }, delayMs);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private startDrain(): void {
    if (this.sending) return;
    this.sending = this.drain().finally(() => {
      this.sending = null;
      if (this.queue.length > 0) this.schedule(this.o.flushIntervalMs);
    });
  }

  private async drain(): Promise<void> {
    try {
      if (this.paused && Date.now() - this.lastStatusCheck >= this.o.statusCheckIntervalMs) await this.checkStatus();
      while (this.queue.length > 0) {
        if (this.paused) {
          this.drop("plan_limit_reached", this.queue.length);
          this.queue = [];
          return;
        }
        const batch = this.takeBatch();
        this.inFlight = batch.length;
        try {
          await this.send(batch);
        } catch (error) {
          // whatever failed, the batch's records are counted (as dropped), never lost silently
          this.logOnce(`send:${String(error)}`, `opsmeter could not send a batch: ${String(error)}`);
          this.drop("client_error", batch.length);
        } finally {
          this.inFlight = 0;
        }
      }
    } catch (error) {
      this.logOnce(`drain:${String(error)}`, `opsmeter sender error: ${String(error)}`);
    }
  }

  private takeBatch(): string[] {
    const batch: string[] = [];
    let size = 16;
    while (this.queue.length > 0 && batch.length < this.o.maxBatchEvents) {
      const encoded = this.queue[0] as string;
      if (batch.length > 0 && size + encoded.length + 1 > this.o.maxBatchBytes) break;
      this.queue.shift();
      batch.push(encoded);
      size += encoded.length + 1;
    }
    return batch;
  }

  private async send(batch: string[]): Promise<void> {
    let pending = batch;
    let failures = 0;
    while (pending.length > 0) {
      if (this.stopped) return this.drop("shutdown", pending.length);
      this.counters.batches += 1;
      this.counters.sent += pending.length;
      const { waitMs, retry, failed } = await this.post(pending);
      let wait = waitMs;
      if (failed) {
        failures += 1;
        if (failures > this.o.maxRetries) return this.drop(failed, retry.length);
        const ceiling = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** (failures - 1));
        wait = Math.max(wait, ceiling / 2 + (Math.random() * ceiling) / 2);
      }
      pending = retry;
      if (pending.length > 0) {
        this.counters.retries += 1;
        await sleep(wait);
      }
    }
  }

  private async request(path: string, init: RequestInit): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.o.timeoutMs);
    try {
      return await this.fetchImpl(this.baseUrl + path, {
        ...init,
        signal: controller.signal,
        headers: { "X-API-Key": this.apiKey, "Content-Type": "application/json" },
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private async post(events: string[]): Promise<{ waitMs: number; retry: string[]; failed: string | null }> {
    let answer: Response;
    let payload: Answer | null = null;
    try {
      answer = await this.request(BATCH_PATH, { method: "POST", body: `{"events":[${events.join(",")}]}` });
      const text = await answer.text();
      try {
        const parsed: unknown = JSON.parse(text);
        payload = parsed && typeof parsed === "object" ? (parsed as Answer) : null;
      } catch {
        payload = null;
      }
    } catch (error) {
      this.logOnce("network", `opsmeter ingest unreachable: ${String(error)} (retrying)`);
      return { waitMs: 0, retry: events, failed: "network_error" };
    }
    const retryAfterMs = Number(answer.headers.get("Retry-After") ?? "0") * 1000 || 0;
    if (payload) this.updateFlags(flagsFrom(payload), true);
    const results = payload?.results;
    if (answer.status === 207 && Array.isArray(results)) {
      this.learnModels(events, results);
      return this.readResults(events, results, retryAfterMs);
    }
    if (answer.status === 429) return { waitMs: retryAfterMs || 1000, retry: events, failed: null };
    if (answer.status >= 500) return { waitMs: retryAfterMs, retry: events, failed: "server_error" };
    const reason = typeof payload?.reason === "string" ? payload.reason : `http_${answer.status}`;
    if (answer.status === 402) this.pause(reason);
    if (answer.status === 401) this.logOnce("unauthorized", "opsmeter ingest: the API key is not valid; records are dropped");
    this.drop(reason, events.length);
    return { waitMs: 0, retry: [], failed: null };
  }

  private readResults(
    events: string[],
    results: unknown[],
    retryAfterMs: number,
  ): { waitMs: number; retry: string[]; failed: string | null } {
    const retry: string[] = [];
    let waitMs = 0;
    let failed: string | null = null;
    events.forEach((event, index) => {
      const result = (results[index] ?? {}) as Answer;
      const status = Number(result.httpStatus ?? 0);
      const reason = typeof result.reason === "string" ? result.reason : "";
      if (status === 202) {
        if (result.duplicate) this.counters.duplicates += 1;
        else this.counters.accepted += 1;
      } else if (status === 429) {
        retry.push(event);
        waitMs = Math.max(waitMs, Number(result.retryAfterSeconds ?? 0) * 1000 || retryAfterMs || 1000);
      } else if (status >= 500 || status === 0) {
        retry.push(event);
        failed = "server_error";
      } else {
        if (status === 402 && reason === "plan_limit_reached") this.pause(reason);
        if (reason === "invalid_payload" && Array.isArray(result.errors)) {
          for (const error of result.errors as Answer[]) {
            this.logOnce(`field:${String(error.field)}`, `opsmeter ingest rejected field ${String(error.field)}: ${String(error.message)}`);
          }
        }
        this.drop(reason || `http_${status}`);
      }
    });
    return { waitMs, retry, failed };
  }

  /**
   * Each answer's modelNormalized: the gateway's name for the model its record was sent with, which model-scoped
   * budgets are matched by (enforcement only).
   */
  private learnModels(events: string[], results: unknown[]): void {
    if (!this.policy.enabled) return;
    results.forEach((item, position) => {
      const result = (item ?? {}) as Answer;
      if (typeof result.modelNormalized !== "string") return;
      const index = typeof result.index === "number" ? result.index : position;
      const event = events[index];
      if (event === undefined) return;
      try {
        const { provider, model } = JSON.parse(event) as Wire;
        if (typeof provider === "string" && typeof model === "string") this.policy.models.said(provider, model, result.modelNormalized);
      } catch {
        // not a record this client encoded: nothing to learn
      }
    });
  }

  private async checkStatus(): Promise<void> {
    this.lastStatusCheck = Date.now();
    try {
      const answer = await this.request(STATUS_PATH, { method: "GET" });
      if (answer.status === 200) this.updateFlags(flagsFrom((await answer.json()) as Answer), false);
    } catch {
      // the next check will tell
    }
  }

  private pause(reason: string): void {
    if (reason !== "plan_limit_reached" || this.paused) return;
    this.paused = true;
    this.lastStatusCheck = Date.now();
    this.updateFlags({ ...this.flagsValue, telemetryPaused: true, planLimitReached: true, reason }, false);
    this.watchPause();
  }

  /**
   * While paused nothing is queued, so no send would ever ask again: a timer (unref'd, so it never keeps the
   * process alive) checks the workspace status every statusCheckIntervalMs and lifts the pause when it has.
   */
  private watchPause(): void {
    if (this.pauseTimer || this.stopped || !this.paused) return;
    this.pauseTimer = setInterval(() => {
      if (!this.paused || this.stopped) return this.stopWatchingPause();
      void this.checkStatus().then(() => {
        if (!this.paused) this.stopWatchingPause();
      });
    }, Math.max(10, this.o.statusCheckIntervalMs));
    (this.pauseTimer as { unref?: () => void }).unref?.();
  }

  private stopWatchingPause(): void {
    if (this.pauseTimer) clearInterval(this.pauseTimer);
    this.pauseTimer = null;
  }

  private updateFlags(next: WorkspaceFlags, fromAnswer: boolean): void {
    const old = this.flagsValue;
    if (this.paused && fromAnswer) next = { ...next, telemetryPaused: true, planLimitReached: true };
    if (this.paused && !fromAnswer && !next.telemetryPaused) this.paused = false;
    this.flagsValue = next;
    this.flagsTime = Date.now();
    for (const name of ["budgetWarning", "budgetExceeded", "planLimitReached"] as const) {
      const callback = this.callbacks[name];
      if (callback && old[name] !== next[name]) {
        try {
          callback(next);
        } catch (error) {
          this.logOnce(`callback:${name}`, `opsmeter ${name} callback threw: ${String(error)}`);
        }
      }
    }
  }

  private drop(reason: string, count = 1): void {
    if (count > 0) this.dropped[reason] = (this.dropped[reason] ?? 0) + count;
  }

  private logOnce(key: string, message: string): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    console.warn(message);
  }
}
