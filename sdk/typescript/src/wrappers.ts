// Instrumented provider clients, through the clients' public options only. The create() methods (chat.completions,
// responses and beta.responses; messages and beta.messages) are replaced by recording ones that take the `opsmeter`
// tags off, apply enforcement and send the call through the client's own create(), which returns the client's own
// APIPromise. Each call's request options carry it to where its HTTP responses are seen: an OpenAI client made with
// a recording `fetch` (withOptions), Anthropic's per-request middleware. A JSON body is read from a clone; a stream's
// events as they pass to the client. Each call is recorded once: a stream when it ends, fails, or is left early,
// however the caller reads it (the client's Stream, tee(), toReadableStream(), the raw .asResponse() body). A
// background Responses call answered queued is held until a wrapped responses.retrieve() / cancel() sees it end.

import type { Opsmeter, RecordInput } from "./client.js";
import { blockError, callScope, type Decision } from "./enforcement.js";

export interface Tokens {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number;
  cacheWriteInputTokens?: number;
  /** Part of cacheWriteInputTokens: Anthropic's 1-hour cache writes (2x input, not 1.25x). Set only when > 0. */
  cacheWrite1hInputTokens?: number;
  reasoningTokens?: number;
}

export interface Attribution {
  endpointTag?: string;
  userId?: string;
  promptVersion?: string;
  metadata?: RecordInput["metadata"];
}

type Obj = Record<string, any>;
const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** OpenAI counts cached tokens inside prompt_tokens (SPEC §5's meaning already). */
export function openaiTokens(usage: Obj | null | undefined): Tokens | undefined {
  if (!usage) return undefined;
  return {
    inputTokens: num(usage.prompt_tokens) ?? 0,
    outputTokens: num(usage.completion_tokens) ?? 0,
    cachedInputTokens: num(usage.prompt_tokens_details?.cached_tokens),
    cacheWriteInputTokens: num(usage.prompt_tokens_details?.cache_write_tokens),
    reasoningTokens: num(usage.completion_tokens_details?.reasoning_tokens),
  };
}

/** The Responses API's usage: input_tokens includes the cached ones, output_tokens the reasoning (SPEC §5's meaning). */
export function openaiResponseTokens(usage: Obj | null | undefined): Tokens | undefined {
  if (!usage) return undefined;
  return {
    inputTokens: num(usage.input_tokens) ?? 0,
    outputTokens: num(usage.output_tokens) ?? 0,
    cachedInputTokens: num(usage.input_tokens_details?.cached_tokens),
    reasoningTokens: num(usage.output_tokens_details?.reasoning_tokens),
  };
}

/** One Anthropic usage object's (or iteration entry's) fields: input, output, cache reads and writes, 1-hour writes. */
function anthropicParts(usage: Obj) {
  const reads = num(usage.cache_read_input_tokens);
  const writes = num(usage.cache_creation_input_tokens);
  const oneHour = Math.min(num(usage.cache_creation?.ephemeral_1h_input_tokens) ?? 0, writes ?? 0);
  return { fresh: num(usage.input_tokens) ?? 0, output: num(usage.output_tokens) ?? 0, reads, writes, oneHour };
}

const addPart = (total: number | undefined, part: number | undefined) =>
  part === undefined ? total : (total ?? 0) + part;

/**
 * Anthropic reports cache reads and writes apart from input_tokens: SPEC §5 counts them inside. The writes with a
 * 1-hour TTL (usage.cache_creation.ephemeral_1h_input_tokens) are sent as cacheWrite1hInputTokens, only when there
 * are some (a gateway older than the field rejects it as unknown). Server-side compaction's usage.iterations entries
 * of type "compaction" are billed on the requested model but left out of the top-level fields: each is added in the
 * same way. "message" entries are already in the top-level fields; "advisor_message" / "fallback_message" ones
 * (possibly another model) are left out.
 */
export function anthropicTokens(usage: Obj | null | undefined): Tokens | undefined {
  if (!usage) return undefined;
  let { fresh, output, reads, writes, oneHour } = anthropicParts(usage);
  for (const entry of Array.isArray(usage.iterations) ? (usage.iterations as Obj[]) : []) {
    if (entry?.type !== "compaction") continue;
    const part = anthropicParts(entry);
    fresh += part.fresh;
    output += part.output;
    oneHour += part.oneHour;
    reads = addPart(reads, part.reads);
    writes = addPart(writes, part.writes);
  }
  return {
    inputTokens: fresh + (reads ?? 0) + (writes ?? 0),
    outputTokens: output,
    cachedInputTokens: reads,
    cacheWriteInputTokens: writes,
    ...(oneHour > 0 ? { cacheWrite1hInputTokens: oneHour } : {}),
    reasoningTokens: num(usage.output_tokens_details?.thinking_tokens),
  };
}

const OWN = "opsmeter";

/** SPEC §5: a record's metadata holds at most 20 keys; ingest refuses more. */
export const METADATA_KEYS = 20;

/** The caller's metadata and then the SDK's own keys while they fit in the 20 ingest accepts, so a record is never
 * refused for what the SDK added (the caller's keys are kept first). */
export function withSdkTags(own: Obj, tags: Obj): Obj {
  const merged: Obj = { ...own };
  for (const [key, value] of Object.entries(tags)) {
    if (key in merged || Object.keys(merged).length < METADATA_KEYS) merged[key] = value;
  }
  return merged;
}

/** How a call ended besides its tokens: an error the provider reported in its body or events, the SDK's tags. */
interface Ending {
  status: "success" | "error";
  errorCode?: string;
  tags: Obj;
}

const SUCCESS: Ending = { status: "success", tags: {} };

/** What a stream's events tell. observe() sees each event's data (and its SSE event name) as it passes: it gives
 * undefined to pass the event on as it came, null to drop it, or the data to pass on in its place. ending() says how
 * the stream ended, as far as it was read (with the SDK's metadata, e.g. opsmeterUsage: "missing"). */
interface StreamUsage {
  observe: (item: Obj, event: string | undefined) => Obj | null | undefined;
  tokens: () => Tokens | undefined;
  model: () => string | undefined;
  ending: () => Ending;
}

/** One provider API as a wrapped create() sees it. */
interface Api {
  provider: string;
  tokens: (usage: Obj | undefined) => Tokens | undefined;
  /** A whole (not streamed) body's ending. */
  ending: (body: Obj | undefined) => Ending;
  streamUsage: (hideUsageChunk: boolean) => StreamUsage;
  prepare: (params: Obj) => { params: Obj; hideUsageChunk: boolean };
  tokensParam: (params: Obj) => string;
  /** A whole body that says the call goes on in the background (the Responses API's background mode). */
  running?: (body: Obj | undefined) => boolean;
}

/** An error object a provider sent (in a body or an event): its code, else its type. */
const errorKind = (error: Obj | undefined): string | undefined =>
  [error?.code, error?.type].find((v): v is string => typeof v === "string" && v.length > 0);

/** An HTTP failure is http_<status>; an error raised without one (a connection that failed) is named by its class. */
function failureCode(error: unknown): string {
  const e = (error ?? {}) as { status?: unknown; name?: unknown };
  if (typeof e.status === "number" && e.status) return `http_${e.status}`;
  return typeof e.name === "string" && e.name ? e.name : "Error";
}

/** One wrapped call: what it is recorded with, and the one record it gets, whichever way it ends. */
class Call {
  decision: Decision | null = null;
  started = Date.now();
  /** An applied queue: the request is sent once this has settled (Anthropic's middleware waits for it). */
  gate: Promise<unknown> | undefined;
  private recorded = false;

  constructor(
    private readonly om: Opsmeter,
    private readonly api: Api,
    readonly attribution: Attribution,
    public params: Obj,
    private readonly hideUsageChunk: boolean,
  ) {}

  record(
    t: Tokens | undefined,
    model: string | undefined,
    status: "success" | "error",
    errorCode?: string,
    sdkTags: Obj = {},
    ended = Date.now(),
  ): void {
    if (this.recorded) return;
    this.recorded = true;
    const { om, api, attribution, params, decision } = this;
    const tags = decision
      ? {
          opsmeterAction: decision.action,
          opsmeterActionMode: decision.mode,
          ...(decision.detail ? { opsmeterActionDetail: decision.detail.slice(0, 200) } : {}),
        }
      : {};
    const metadata = withSdkTags(attribution.metadata ?? {}, { ...tags, ...sdkTags });
    // the provider's answer names the model the call is recorded with: see ModelNames
    if (model && params.model && om.policy.enabled) om.policy.models.recorded(api.provider, String(params.model), String(model));
    om.record({
      provider: api.provider,
      model: String(model ?? params.model ?? "unknown"),
      ...(t ?? { inputTokens: 0, outputTokens: 0 }),
      latencyMs: ended - this.started,
      status,
      errorCode: errorCode?.slice(0, 64), // ingest takes at most 64 characters; a provider's own code could be longer
      endpointTag: attribution.endpointTag,
      userId: attribution.userId,
      promptVersion: attribution.promptVersion,
      metadata: Object.keys(metadata).length ? metadata : undefined,
    });
  }

  /** Recorded from a whole response body (`ended`: when it was seen): its usage, model and ending. */
  answered(body: Obj | undefined, ended = Date.now()): void {
    const end = this.api.ending(body);
    const missing = body?.usage ? {} : { opsmeterUsage: "missing" };
    this.record(this.api.tokens(body?.usage), body?.model, end.status, end.errorCode, { ...missing, ...end.tags }, ended);
  }

  /**
   * A background call answered queued / in_progress: held by its response id on the Opsmeter client, recorded from
   * the response a wrapped retrieve() / cancel() sees end; if none does, as it was answered (no tokens), marked.
   */
  private hold(body: Obj): void {
    const answeredAt = Date.now();
    this.om.backgroundCalls.hold(String(body.id), {
      finished: (response, seenAt) => this.answered(response, seenAt),
      unfinished: () =>
        this.record(undefined, body.model, "success", undefined, { opsmeterUsage: "missing", opsmeterBackground: "unfinished" }, answeredAt),
    });
  }

  /** The call failed before (or instead of) a successful response: an HTTP status, a connection, a block. */
  failed(error: unknown): void {
    this.record(undefined, undefined, "error", failureCode(error));
  }

  /**
   * A successful HTTP response of this call, as the client receives it, given back for the client to read. A JSON
   * body is recorded from a copy (clone()), whoever reads the original, or nobody. A stream is given back as a new
   * Response over the same body, whose events are seen as they pass on to the client: recorded when it ends, fails,
   * or is left (the client cancels it or aborts `signal`, its request), with the usage seen so far.
   */
  response(response: Response, signal: AbortSignal | null | undefined): Response {
    const { api, params } = this;
    if (!params.stream || !response.body) {
      response
        .clone()
        .json()
        .then(
          (body: Obj) => (api.running?.(body) ? this.hold(body) : this.answered(body)),
          (error: unknown) => this.failed(error),
        );
      return response;
    }
    const seen = api.streamUsage(this.hideUsageChunk);
    const ended = (error?: unknown) => {
      const end = seen.ending();
      if (error !== undefined && end.status !== "error") {
        this.record(seen.tokens(), seen.model(), "error", failureCode(error), end.tags);
      } else {
        this.record(seen.tokens(), seen.model(), end.status, end.errorCode, end.tags);
      }
    };
    signal?.addEventListener("abort", () => ended(), { once: true });
    const body = sseEvents(response.body, seen.observe, (error) => ended(signal?.aborted ? undefined : error));
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }
}

const SSE_END = /\r\n\r\n|\n\n|\r\r/;

/** One SSE event's text: its `event:` name and its `data:` lines. */
function sseFields(block: string): { event?: string; data: string } {
  let event: string | undefined;
  const data: string[] = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return { event, data: data.join("\n") };
}

/**
 * An SSE body passed on event by event, each event's JSON data shown to `observe` first (which may drop it or give
 * data to send in its place); `ended` is called once: when the body ends (no argument), fails (the error), or is
 * cancelled by its reader (no argument), which also cancels the source.
 */
function sseEvents(
  source: ReadableStream<Uint8Array>,
  observe: StreamUsage["observe"],
  ended: (error?: unknown) => void,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let pending = "";
  let done = false;
  const finish = (error?: unknown) => {
    if (done) return;
    done = true;
    try {
      ended(error);
    } catch {
      // recording must never break the provider call
    }
  };
  const passOn = (block: string): string => {
    const { event, data } = sseFields(block);
    let item: unknown;
    try {
      item = JSON.parse(data);
    } catch {
      return block; // [DONE], a comment, a keep-alive: passed on as they came
    }
    if (!item || typeof item !== "object") return block;
    try {
      const replaced = observe(item as Obj, event);
      if (replaced === null) return "";
      if (replaced === undefined) return block;
      return `${event === undefined ? "" : `event: ${event}\n`}data: ${JSON.stringify(replaced)}`;
    } catch {
      return block; // recording must never break the provider call
    }
  };
  /** The whole events in `pending`, as they are passed on; what is left waits for more bytes. */
  const takeEvents = (): string => {
    let out = "";
    for (let match = SSE_END.exec(pending); match; match = SSE_END.exec(pending)) {
      const block = passOn(pending.slice(0, match.index));
      if (block) out += block + match[0];
      pending = pending.slice(match.index + match[0].length);
    }
    return out;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          finish(error);
          controller.error(error);
          return;
        }
        if (chunk.done) {
          pending += decoder.decode();
          const rest = takeEvents() + (pending ? passOn(pending) : "");
          pending = "";
          if (rest) controller.enqueue(encoder.encode(rest));
          finish();
          controller.close();
          return;
        }
        pending += decoder.decode(chunk.value, { stream: true });
        const out = takeEvents();
        if (out) {
          controller.enqueue(encoder.encode(out));
          return;
        }
      }
    },
    cancel(reason) {
      finish();
      return reader.cancel(reason);
    },
  });
}

/** How one client's HTTP responses reach the wrapped calls: a call's request options carry it there. */
interface Route {
  /** The request options the call is sent with: the caller's, and what takes the call to its responses. */
  tag(options: Obj | undefined, call: Call): Obj;
  /** The client's APIPromise came back for the call. */
  sent(promise: any, call: Call): void;
  /** For an applied queue: what the caller gets, the call sent once `wait()` resolves; undefined if the route cannot
   * queue yet. A route without it queues by `call.gate`. */
  queue?(wait: () => Promise<unknown>, send: () => any): any;
}

/** Sends a call's params with request options through the client the responses are seen on. */
type Send = (params: Obj, options: Obj) => any;

function instrument(om: Opsmeter, resource: Obj, api: Api, route: Route, send: Send): void {
  const original = resource.create as ((...args: any[]) => any) & { __opsmeter?: boolean };
  if (original.__opsmeter) return;
  const create = (body: Obj, options?: Obj): unknown => {
    const { [OWN]: own, ...rest } = body ?? {};
    const prepared = api.prepare(rest);
    const call = new Call(om, api, (own ?? {}) as Attribution, prepared.params, prepared.hideUsageChunk);
    const sendNow = (): any => {
      let promise: any;
      try {
        promise = send(call.params, route.tag(options, call));
      } catch (error) {
        call.failed(error);
        throw error;
      }
      try {
        route.sent(promise, call);
      } catch {
        // recording must never break the provider call
      }
      return promise;
    };
    if (!om.policy.enabled) return sendNow();
    // Runtime enforcement decides at once, from the policy snapshot fetched ahead (refreshed in the background):
    // the caller still gets the provider's APIPromise. Until the first snapshot has arrived calls are let through
    // (await om.policy.ready() at startup to enforce from the very first call). A block throws here.
    om.policy.maybeRefresh();
    const param = api.tokensParam(call.params);
    // scoped budgets are matched against what the call is recorded with (endpoint tag, user) and the model asked for
    const scope = callScope(call.attribution.endpointTag, call.params.model, call.attribution.userId);
    const decision = om.policy.decide(api.provider, call.params, param, scope);
    call.decision = decision;
    if (decision && decision.action === "block" && decision.mode === "applied") {
      call.record(undefined, undefined, "error", "budget_blocked");
      throw blockError(decision);
    }
    if (decision) call.params = decision.params;
    if (decision && decision.action === "queue" && decision.mode === "applied") {
      const wait = () => {
        const waited = Date.now();
        const waiting = om.policy.waitInQueue(api.provider, call.params, param, scope).then(
          () => {
            decision.detail = `waited ${((Date.now() - waited) / 1000).toFixed(1)}s for the budget window`;
            call.started = Date.now();
          },
          (error: unknown) => {
            call.record(undefined, undefined, "error", "budget_blocked");
            throw error;
          },
        );
        waiting.catch(() => undefined); // the caller sees the error through the APIPromise
        return waiting;
      };
      if (!route.queue) {
        call.gate = wait();
        return sendNow();
      }
      const queued = route.queue(wait, sendNow);
      if (queued) return queued;
      decision.detail = "not queued: the first call through this client is let through";
    }
    call.started = Date.now();
    return sendNow();
  };
  (create as { __opsmeter?: boolean }).__opsmeter = true;
  resource.create = create;
}

/**
 * A stream reports usage only when asked (a final chunk with empty `choices`): ask unless the caller said
 * include_usage (their other options kept). When the SDK asked, that usage-only chunk is read by the SDK and not
 * passed on: the caller's loop (`chunk.choices[0]`) was written for a stream without it.
 */
function askForStreamUsage(params: Obj): { params: Obj; hideUsageChunk: boolean } {
  if (!params.stream) return { params, hideUsageChunk: false };
  const options = params.stream_options;
  if (!options) return { params: { ...params, stream_options: { include_usage: true } }, hideUsageChunk: true };
  if (typeof options === "object" && !("include_usage" in options)) {
    return { params: { ...params, stream_options: { ...options, include_usage: true } }, hideUsageChunk: true };
  }
  return { params, hideUsageChunk: false };
}

const openaiTokensParam = (params: Obj): string =>
  "max_tokens" in params && !("max_completion_tokens" in params) ? "max_tokens" : "max_completion_tokens";

/** Chat completions: a stream's tokens come in its usage chunk, the last before [DONE]. */
const chatCompletions: Api = {
  provider: "openai",
  tokens: (usage) => openaiTokens(usage),
  ending: () => SUCCESS,
  // A stream left or failed before its usage chunk is recorded without tokens, marked opsmeterUsage: "missing" (the
  // prompt is billed all the same). A failure mid-stream is a data line with an `error` object (the client throws it).
  streamUsage: (hideUsageChunk) => {
    let usage: Obj | undefined;
    let model: string | undefined;
    let failed: string | undefined;
    return {
      observe: (chunk) => {
        if (chunk.error && typeof chunk.error === "object") {
          failed = errorKind(chunk.error) ?? "error";
          return undefined;
        }
        model = chunk.model ?? model;
        if (!chunk.usage) {
          // asked for usage, every chunk carries `usage: null`; the caller did not ask: no usage key, as unwrapped
          if (!hideUsageChunk || chunk.usage !== null) return undefined;
          const { usage: _, ...rest } = chunk;
          return rest;
        }
        usage = chunk.usage;
        return hideUsageChunk && !chunk.choices?.length ? null : undefined;
      },
      tokens: () => openaiTokens(usage),
      model: () => model,
      ending: () => ({
        ...(failed ? { status: "error" as const, errorCode: failed } : { status: "success" as const }),
        tags: usage ? {} : { opsmeterUsage: "missing" },
      }),
    };
  },
  prepare: askForStreamUsage,
  tokensParam: openaiTokensParam,
};

/**
 * A Responses API response's end: "failed" is an error with the code of its `error` (e.g. server_error);
 * "cancelled" (a background call's) is an error `cancelled`, with whatever usage it carries; "incomplete" counts
 * (its usage is billed) and says why in metadata.opsmeterIncomplete.
 */
function responseEnding(response: Obj | undefined): Ending {
  if (response?.status === "failed") {
    return { status: "error", errorCode: String(response.error?.code || "response_failed"), tags: {} };
  }
  if (response?.status === "cancelled") return { status: "error", errorCode: "cancelled", tags: {} };
  if (response?.status === "incomplete") {
    return { status: "success", tags: { opsmeterIncomplete: String(response.incomplete_details?.reason ?? "unknown") } };
  }
  return SUCCESS;
}

/** A background response's statuses while it runs, and once it has ended (what retrieve() and cancel() answer). */
const BACKGROUND_RUNNING = new Set(["queued", "in_progress"]);
const BACKGROUND_ENDED = new Set(["completed", "failed", "incomplete", "cancelled"]);

/** How a held background call is recorded: from the response that ended it (seen at `seenAt`), or as answered. */
interface HeldCall {
  finished: (response: Obj, seenAt: number) => void;
  unfinished: () => void;
}

/** The most background calls an Opsmeter client holds; past it the oldest is recorded as unfinished. */
export const MAX_HELD_BACKGROUND_CALLS = 1024;

/**
 * The background Responses calls of one Opsmeter client still running, by response id (oldest first): each is recorded
 * once, when a wrapped responses.retrieve() / cancel() (through any client wrapped with that Opsmeter) sees its
 * response end; held ones left at shutdown, or pushed out by a newer one past MAX_HELD_BACKGROUND_CALLS, are recorded
 * as they were answered, without tokens (opsmeterUsage: "missing", opsmeterBackground: "unfinished").
 */
export class BackgroundCalls {
  private readonly held = new Map<string, HeldCall>();
  private closed = false;

  get size(): number {
    return this.held.size;
  }

  hold(id: string, call: HeldCall): void {
    if (this.closed) return settle(() => call.unfinished());
    const before = this.held.get(id);
    this.held.delete(id);
    if (before && before !== call) settle(() => before.unfinished()); // never dropped silently
    for (const [oldest, pushedOut] of this.held) {
      if (this.held.size < MAX_HELD_BACKGROUND_CALLS) break;
      this.held.delete(oldest);
      settle(() => pushedOut.unfinished());
    }
    this.held.set(id, call);
  }

  /** A response a wrapped retrieve() / cancel() got, when it was seen: a held call's end, or nothing. */
  seen(response: Obj | undefined, seenAt: number): void {
    const id = response?.id;
    if (typeof id !== "string" || !BACKGROUND_ENDED.has(response?.status)) return;
    const call = this.held.get(id);
    if (!call) return; // a call this client did not hold is not a new call
    this.held.delete(id);
    settle(() => call.finished(response as Obj, seenAt));
  }

  /** At shutdown: every call still held recorded as unfinished, and any later one at once. */
  close(): void {
    this.closed = true;
    const left = [...this.held.values()];
    this.held.clear();
    for (const call of left) settle(() => call.unfinished());
  }
}

/** Recording must never break the provider call (or the shutdown). */
function settle(record: () => void): void {
  try {
    record();
  } catch {
    // nothing to give back
  }
}

/** The events that end a Responses stream; their `response` carries the usage. */
const RESPONSE_ENDS = new Set(["response.completed", "response.incomplete", "response.failed"]);

/** OpenAI's Responses API (responses.create, and parse() / stream(), which call it): usage in the response. */
const responses: Api = {
  provider: "openai",
  tokens: (usage) => openaiResponseTokens(usage),
  ending: (body) => responseEnding(body),
  // A stream's usage is on the response of its last event: a stream left or failed before it is recorded without
  // tokens, marked opsmeterUsage: "missing". An `error` event the client passes on (not thrown) is the call's error.
  streamUsage: () => {
    let usage: Obj | undefined;
    let model: string | undefined;
    let last: Obj | undefined;
    let failed: string | undefined;
    return {
      observe: (event) => {
        const response = event?.response;
        model = response?.model ?? model;
        if (response?.usage) usage = response.usage;
        if (RESPONSE_ENDS.has(event?.type)) last = response;
        else if (event?.type === "error") failed = String(event.code || "error");
        return undefined;
      },
      tokens: () => openaiResponseTokens(usage),
      model: () => model,
      ending: () => {
        const end = last ? responseEnding(last) : failed ? { status: "error" as const, errorCode: failed, tags: {} } : SUCCESS;
        return { ...end, tags: { ...(usage ? {} : { opsmeterUsage: "missing" }), ...end.tags } };
      },
    };
  },
  prepare: (params) => ({ params, hideUsageChunk: false }),
  tokensParam: () => "max_output_tokens",
  running: (body) => body?.background === true && BACKGROUND_RUNNING.has(body?.status) && typeof body?.id === "string",
};

/** The key a wrapped call rides on in its request's fetchOptions, which the client passes to its `fetch` as they are. */
const CALL = Symbol("opsmeter.call");

/** The longest a timer takes (2^31 - 1 ms): the recording client applies its own timeout around its fetch already. */
const NO_TIMEOUT_MS = 2_147_483_647;

type Fetch = (url: any, init?: any) => Promise<Response>;

/** `client`'s own way to fetch, with the `fetch` it was made with: its public fetchWithTimeout(). */
function fetchOf(client: Obj): Fetch {
  if (typeof client.fetchWithTimeout !== "function") return (url, init) => fetch(url, init);
  return (url, init) => client.fetchWithTimeout(url, init, NO_TIMEOUT_MS, new AbortController());
}

/** The key a wrapped responses.retrieve() / cancel() rides on: the held background calls its answer may end. */
const HELD = Symbol("opsmeter.held");

/** A retrieve() / cancel() answer, read from a copy (clone()), shown to the held calls (a stream is not looked at). */
function watchBackground(response: Response, held: BackgroundCalls): void {
  const seenAt = Date.now();
  if (!response.body || response.headers.get("content-type")?.includes("text/event-stream")) return;
  response
    .clone()
    .json()
    .then(
      (body: Obj) => held.seen(body, seenAt),
      () => undefined,
    );
}

/** A fetch that gives each successful response of a wrapped call (its init carries the call) to the call. */
function recordingFetch(inner: Fetch): Fetch {
  return async (url, init) => {
    const { [CALL]: call, [HELD]: held, ...rest } = (init ?? {}) as Obj & { [CALL]?: Call; [HELD]?: BackgroundCalls };
    const response = await inner(url, rest);
    if (held && response.ok) {
      try {
        watchBackground(response, held);
      } catch {
        // recording must never break the provider call
      }
      return response;
    }
    if (!call || !response.ok) return response;
    try {
      return call.response(response, rest.signal);
    } catch {
      return response; // recording must never break the provider call
    }
  };
}

/**
 * OpenAI's calls are sent by `client`, made with a recording fetch; a call's failure (a status, a connection, after
 * the client's retries) is seen on its APIPromise's asResponse(), which only maps the client's response promise (and
 * keeps a call nobody awaits from an unhandled rejection). A queued call is an APIPromise of the client's own class
 * (its public constructor), learned from a first call, on the real call sent after the wait.
 */
function openaiRoute(client: Obj): Route {
  let promiseClass: (new (...args: any[]) => any) | undefined;
  return {
    tag: (options, call) => ({ ...options, fetchOptions: { ...options?.fetchOptions, [CALL]: call } }),
    sent: (promise, call) => {
      if (typeof promise?.asResponse !== "function") return;
      promiseClass ??= promise.constructor;
      promise.asResponse().then(undefined, (error: unknown) => call.failed(error));
    },
    queue: (wait, send) => {
      if (!promiseClass) return undefined;
      let real: any;
      const response = wait().then(() => {
        real = send();
        return real.asResponse().then((raw: Response) => ({ response: raw }));
      });
      response.catch(() => undefined); // the caller sees the error through the APIPromise
      return new promiseClass(client, response, () => real);
    },
  };
}

/** `client.withOptions(...)` makes a new client: it comes back wrapped too. */
function rewrapCopies(client: Obj, wrap: (options: Obj | undefined, made: Obj) => unknown): void {
  const original = client.withOptions as (((options?: Obj) => Obj) & { __opsmeter?: boolean }) | undefined;
  if (typeof original !== "function" || original.__opsmeter) return;
  const withOptions = (options?: Obj): unknown => wrap(options, original.call(client, options));
  (withOptions as { __opsmeter?: boolean }).__opsmeter = true;
  client.withOptions = withOptions;
}

const OPENAI_APIS: Array<[(client: Obj) => Obj | undefined, Api]> = [
  [(client) => client.chat?.completions, chatCompletions],
  [(client) => client.responses, responses],
  [(client) => client.beta?.responses, responses],
];

/** A client and the client made with the recording fetch that sends its calls (the same, for the latter). */
const recordingClients = new WeakMap<object, Obj>();

/** `client`'s create methods, recorded, sent by `sender`'s own (a client with the recording fetch). */
function instrumentOpenAI(om: Opsmeter, client: Obj, sender: Obj, route: Route): void {
  const sends = OPENAI_APIS.map(([find]): Send | undefined => {
    const resource = find(sender);
    const create = resource?.create;
    return typeof create === "function" && !create.__opsmeter ? (params, options) => create.call(resource, params, options) : undefined;
  });
  OPENAI_APIS.forEach(([find, api], i) => {
    const resource = find(client);
    const send = sends[i];
    if (resource && typeof resource.create === "function" && send) instrument(om, resource, api, route, send);
  });
  for (const find of [(c: Obj) => c.responses, (c: Obj) => c.beta?.responses]) followBackground(om, find(client), find(sender));
  rewrapCopies(client, (options, made) => {
    // a copy of the recording client keeps its fetch, unless given another
    if (client !== sender || options?.fetch) return wrapOpenAI(om, made);
    recordingClients.set(made, made);
    instrumentOpenAI(om, made, made, openaiRoute(made));
    return made;
  });
}

/** responses.retrieve(id, query, options) and cancel(id, options): the position of their request options. */
const FOLLOW_UPS: Array<[string, number]> = [
  ["retrieve", 2],
  ["cancel", 1],
];

/**
 * `resource`'s retrieve() and cancel() sent by `sender`'s own with request options that show their answer to the held
 * background calls (the caller's options kept). A streamed retrieve (query.stream) is sent as it is, not looked at.
 */
function followBackground(om: Opsmeter, resource: Obj | undefined, sender: Obj | undefined): void {
  if (!resource || !sender) return;
  for (const [name, at] of FOLLOW_UPS) {
    const own = resource[name] as (((...args: any[]) => any) & { __opsmeter?: boolean }) | undefined;
    const original = sender[name] as ((...args: any[]) => any) & { __opsmeter?: boolean };
    if (typeof own !== "function" || own.__opsmeter || typeof original !== "function" || original.__opsmeter) continue;
    const followed = (...args: any[]): unknown => {
      let sent = args;
      try {
        if (!(name === "retrieve" && args[1]?.stream)) {
          sent = Array.from({ length: Math.max(args.length, at + 1) }, (_, i) => args[i]);
          const options = sent[at] as Obj | undefined;
          sent[at] = { ...options, fetchOptions: { ...options?.fetchOptions, [HELD]: om.backgroundCalls } };
        }
      } catch {
        sent = args; // recording must never break the provider call
      }
      return original.apply(sender, sent);
    };
    (followed as { __opsmeter?: boolean }).__opsmeter = true;
    resource[name] = followed;
  }
}

/**
 * The OpenAI client, its chat completions and Responses API (and beta.responses) recorded. Per call:
 * `opsmeter: {endpointTag, userId, promptVersion}`. The client returned is a copy made by the client's withOptions()
 * with a recording `fetch` (which calls the given client's own); the given client's create methods send through it
 * too, so either may be used.
 */
export function wrapOpenAI<T>(om: Opsmeter, client: T): T {
  const given = client as Obj;
  const known = recordingClients.get(given);
  if (known) return known as T;
  const copy = given.withOptions({ fetch: recordingFetch(fetchOf(given)) }) as Obj;
  recordingClients.set(given, copy);
  recordingClients.set(copy, copy);
  const route = openaiRoute(copy);
  instrumentOpenAI(om, given, copy, route);
  instrumentOpenAI(om, copy, copy, route);
  return copy as T;
}

/** Messages: message_start carries the input side, message_delta the cumulative output (and iterations). */
const messagesApi: Api = {
  provider: "anthropic",
  tokens: (usage) => anthropicTokens(usage),
  ending: () => SUCCESS,
  // An error event mid-stream (the client throws it) is the call's error, with the usage seen until then.
  streamUsage: () => {
    const usage: Obj = {};
    let model: string | undefined;
    let failed: string | undefined;
    const take = (u: Obj | undefined) => {
      for (const [k, v] of Object.entries(u ?? {})) if (v !== null && v !== undefined) usage[k] = v;
    };
    return {
      observe: (event) => {
        if (event.type === "message_start") {
          model = event.message?.model ?? model;
          take(event.message?.usage);
        } else if (event.type === "message_delta") take(event.usage);
        else if (event.type === "error") failed = errorKind(event.error) ?? "error";
        return undefined;
      },
      tokens: () => (Object.keys(usage).length ? anthropicTokens(usage) : undefined),
      model: () => model,
      ending: () => (failed ? { status: "error", errorCode: failed, tags: {} } : SUCCESS),
    };
  },
  prepare: (params) => ({ params, hideUsageChunk: false }),
  tokensParam: () => "max_tokens",
};

/** Whether the client sends no further attempt after this one (its documented retry rules: 408, 409, 429 and 5xx, and
 * connection failures, up to maxRetries; the server's x-should-retry first). */
function lastAttempt(client: Obj, request: Obj, ctx: Obj, response?: Response): boolean {
  const attempt = Number(request.headers?.get?.("x-stainless-retry-count")) || 0;
  if (attempt >= (ctx.options?.maxRetries ?? client.maxRetries ?? 2)) return true;
  if (!response) return Boolean(ctx.options?.signal?.aborted);
  const says = response.headers.get("x-should-retry");
  if (says === "true" || says === "false") return says === "false";
  return ![408, 409, 429].includes(response.status) && response.status < 500;
}

/**
 * Anthropic's calls carry a per-request middleware (a public request option), which sees each attempt's response:
 * a failure is recorded on the attempt the client does not retry. An applied queue waits there, before the request
 * is sent; its BudgetExceededError reaches the caller as it is.
 */
function anthropicRoute(client: Obj): Route {
  const recorder = (call: Call) => async (request: Obj, next: (request: Obj) => Promise<Response>, ctx: Obj) => {
    if (call.gate) await call.gate;
    let response: Response;
    try {
      response = await next(request);
    } catch (error) {
      if (lastAttempt(client, request, ctx)) call.failed(error);
      throw error;
    }
    try {
      if (response.ok) return call.response(response, request.signal);
      if (lastAttempt(client, request, ctx, response)) call.failed(response);
    } catch {
      // recording must never break the provider call
    }
    return response;
  };
  return {
    tag: (options, call) => ({ ...options, middleware: [...(options?.middleware ?? []), recorder(call)] }),
    sent: () => undefined,
  };
}

/** The same Anthropic client, its messages and beta.messages recorded (cache reads and writes counted inside input);
 * their stream() and parse() call create(). */
export function wrapAnthropic<T>(om: Opsmeter, client: T): T {
  const c = client as Obj;
  const route = anthropicRoute(c);
  for (const resource of [c.messages, c.beta?.messages]) {
    const create = resource?.create;
    if (typeof create === "function") instrument(om, resource, messagesApi, route, (params, options) => create.call(resource, params, options));
  }
  rewrapCopies(c, (_options, made) => wrapAnthropic(om, made));
  return client;
}
