// Instrumented provider clients: the client is returned as given, its chat.completions.create and
// responses.create (OpenAI, and beta.responses.create) or messages.create (Anthropic, and beta.messages.create) replaced
// by a recording one that returns the client's own APIPromise. Each call is recorded once; a stream when it ends (from
// its final usage), fails, or is left early by the caller, however it is read (for await, tee(), toReadableStream()); a
// response read only through .asResponse() (also on the promise parse() derives) when it arrives.

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

/** What a stream's items tell: observe() says whether the caller gets the item; ending() how the stream ended, as far
 * as it was read (with the SDK's metadata, e.g. opsmeterUsage: "missing"). */
interface StreamUsage {
  observe: (item: Obj) => boolean;
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
}

/**
 * An error raised inside a stream the provider answered 200 has no HTTP status of its own: the error it sent says what
 * happened (Anthropic's error event: overloaded_error; OpenAI's error object: its code, else its type). A provider
 * error carries that body as `error`; an HTTP failure keeps http_<status>.
 */
function failureCode(error: unknown): string {
  const e = (error ?? {}) as { status?: unknown; error?: unknown; code?: unknown; type?: unknown; name?: unknown };
  const status = typeof e.status === "number" && e.status ? e.status : undefined;
  if (status !== undefined && status !== 200) return `http_${status}`;
  if (e.error && typeof e.error === "object") {
    const kind = [e.code, e.type].find((v) => typeof v === "string" && v);
    if (kind) return String(kind);
  }
  if (status !== undefined) return `http_${status}`;
  return typeof e.name === "string" && e.name ? e.name : "Error";
}

function instrument(om: Opsmeter, resource: Obj, api: Api): void {
  const { provider, tokens, ending, streamUsage, prepare, tokensParam } = api;
  const original = resource.create as ((...args: any[]) => any) & { __opsmeter?: boolean };
  if (original.__opsmeter) return;
  let apiPromise: (new (...args: any[]) => any) | undefined; // the client's APIPromise class, seen on a first call
  const create = (body: Obj, options?: Obj): unknown => {
    const { [OWN]: own, ...rest } = body ?? {};
    const attribution = (own ?? {}) as Attribution;
    const prepared = prepare(rest);
    let params = prepared.params;
    let started = Date.now();
    let decision: Decision | null = null;
    let recorded = false; // one record per call, whatever happens after the first
    const record = (
      t: Tokens | undefined,
      model: string | undefined,
      status: "success" | "error",
      errorCode?: string,
      sdkTags: Obj = {},
    ) => {
      if (recorded) return;
      recorded = true;
      const tags = decision
        ? {
            opsmeterAction: decision.action,
            opsmeterActionMode: decision.mode,
            ...(decision.detail ? { opsmeterActionDetail: decision.detail.slice(0, 200) } : {}),
          }
        : {};
      const metadata = withSdkTags(attribution.metadata ?? {}, { ...tags, ...sdkTags });
      // the provider's answer names the model the call is recorded with: see ModelNames
      if (model && params.model && om.policy.enabled) om.policy.models.recorded(provider, String(params.model), String(model));
      om.record({
        provider,
        model: String(model ?? params.model ?? "unknown"),
        ...(t ?? { inputTokens: 0, outputTokens: 0 }),
        latencyMs: Date.now() - started,
        status,
        errorCode: errorCode?.slice(0, 64), // ingest takes at most 64 characters; a provider's own code could be longer
        endpointTag: attribution.endpointTag,
        userId: attribution.userId,
        promptVersion: attribution.promptVersion,
        metadata: Object.keys(metadata).length ? metadata : undefined,
      });
    };
    let parsing = false; // the body is being parsed: the record is taken there, not by .asResponse()
    /** What the caller gets: the result, or for a stream one that records what its reader reads. */
    const instrumentResult = (result: Obj, client?: unknown): Obj => {
      if (!params.stream) {
        const end = ending(result);
        const tags = { ...(result?.usage ? {} : { opsmeterUsage: "missing" }), ...end.tags };
        record(tokens(result?.usage), result?.model, end.status, end.errorCode, tags);
        return result;
      }
      const seen = streamUsage(prepared.hideUsageChunk);
      const stream = result as any;
      const source = { [Symbol.asyncIterator]: stream[Symbol.asyncIterator].bind(result) as () => AsyncIterator<Obj> };
      // Recorded once: as an error if the stream fails, else when it ends or the caller leaves it early (a
      // `break` calls return(), which also closes the provider's stream), with the usage seen so far.
      const iterate = async function* () {
        try {
          for await (const item of source) {
            if (seen.observe(item)) yield item;
          }
        } catch (error) {
          record(seen.tokens(), seen.model(), "error", failureCode(error), seen.ending().tags);
          throw error;
        } finally {
          const end = seen.ending();
          record(seen.tokens(), seen.model(), end.status, end.errorCode, end.tags);
        }
      };
      if (client !== undefined && typeof stream.tee === "function" && stream.controller) {
        // A Stream of the provider's own class (its public constructor) on the recording iterator: tee() and
        // toReadableStream() read through that iterator too, where they would bypass a patched Symbol.asyncIterator.
        const recording = new stream.constructor(iterate, stream.controller, client);
        // responses.create()'s _thenUnwrap gives its stream the request id, as a hidden property: kept
        const requestId = Object.getOwnPropertyDescriptor(stream, "_request_id");
        if (requestId) Object.defineProperty(recording, "_request_id", requestId);
        return recording;
      }
      stream[Symbol.asyncIterator] = iterate;
      return stream;
    };
    // A response taken only through .asResponse() has a body the caller reads: it is recorded when it arrives, with
    // the usage of a copy of a JSON body, and without tokens for a stream (reading a copy of it would keep the
    // provider's request open after the caller cancels theirs). .withResponse() parses first: recorded there.
    const recordUnparsed = (response: Response): void => {
      const missing = { opsmeterUsage: "missing" };
      if (params.stream) return record(undefined, undefined, "success", undefined, missing);
      response
        .clone()
        .json()
        .then(
          (body: Obj) => {
            const end = ending(body);
            record(tokens(body?.usage), body?.model, end.status, end.errorCode, { ...(body?.usage ? {} : missing), ...end.tags });
          },
          () => record(undefined, undefined, "success", undefined, missing),
        );
    };
    const observeAsResponse = (promise: any): void => {
      const asResponse = promise.asResponse as () => Promise<Response>;
      promise.asResponse = () =>
        asResponse.call(promise).then((response) => {
          try {
            if (!parsing) recordUnparsed(response);
          } catch {
            // recording must never break the provider call
          }
          return response;
        });
      // OpenAI's chat.completions.parse() and responses.parse() hand back a promise derived from this one with
      // _thenUnwrap (public in the clients' types): the same request, so its .asResponse() is observed too, and so is
      // anything derived from it. The derived promise is the one the client built, unchanged otherwise.
      const thenUnwrap = promise._thenUnwrap as ((...args: unknown[]) => any) | undefined;
      if (typeof thenUnwrap !== "function") return;
      promise._thenUnwrap = (...args: unknown[]) => {
        const derived = thenUnwrap.apply(promise, args);
        try {
          if (derived && typeof derived.asResponse === "function") observeAsResponse(derived);
        } catch {
          // recording must never break the provider call
        }
        return derived;
      };
    };
    // The provider's own APIPromise goes back to the caller, never a plain Promise: parse(), messages.stream(),
    // .withResponse() and .asResponse() build on it. Its body is read once, by whoever consumes it: the record is
    // taken inside the promise's own parse step (its parseResponse), so nothing here reads the body a second time.
    const observe = (promise: any): unknown => {
      if (promise && typeof promise.parseResponse === "function" && typeof promise.responsePromise?.then === "function") {
        apiPromise ??= promise.constructor;
        const parse = promise.parseResponse as (client: unknown, props: Obj) => Promise<unknown>;
        promise.parseResponse = async (client: unknown, props: Obj) => {
          parsing = true;
          let result: any;
          try {
            result = await parse.call(promise, client, props);
          } catch (error) {
            // Anthropic's client reads a body again after a connection error while it can: not the last word
            if (!(props?.retry && (error as Error | null)?.name === "APIConnectionError")) {
              record(undefined, undefined, "error", failureCode(error));
            }
            throw error;
          }
          try {
            return instrumentResult(result, client);
          } catch {
            return result; // recording must never break the provider call
          }
        };
        // a failed request: recorded, and this handler also keeps a call nobody awaits from an unhandled rejection
        promise.responsePromise.then(undefined, (error: unknown) => record(undefined, undefined, "error", failureCode(error)));
        if (typeof promise.asResponse === "function") observeAsResponse(promise);
        return promise;
      }
      if (promise && typeof promise.then === "function") {
        // not an APIPromise (another client version, a test double): a plain promise may be observed twice
        promise.then(
          (result: Obj) => {
            try {
              instrumentResult(result);
            } catch {
              // recording must never break the provider call
            }
          },
          (error: unknown) => record(undefined, undefined, "error", failureCode(error)),
        );
        return promise;
      }
      instrumentResult(promise);
      return promise;
    };
    const call = (): any => {
      let promise: any;
      try {
        promise = original.call(resource, params, options);
      } catch (error) {
        record(undefined, undefined, "error", failureCode(error));
        throw error;
      }
      return observe(promise);
    };
    if (!om.policy.enabled) return call();
    // Runtime enforcement decides at once, from the policy snapshot fetched ahead (refreshed in the background):
    // the caller still gets the provider's APIPromise. Until the first snapshot has arrived calls are let through
    // (await om.policy.ready() at startup to enforce from the very first call). A block throws here.
    om.policy.maybeRefresh();
    const param = tokensParam(params);
    // scoped budgets are matched against what the call is recorded with (endpoint tag, user) and the model asked for
    const scope = callScope(attribution.endpointTag, params.model, attribution.userId);
    decision = om.policy.decide(provider, params, param, scope);
    if (decision && decision.action === "block" && decision.mode === "applied") {
      record(undefined, undefined, "error", "budget_blocked");
      throw blockError(decision);
    }
    if (decision && decision.action === "queue" && decision.mode === "applied") {
      const client = resource._client;
      if (apiPromise && client) {
        // The request waits inside an APIPromise of the provider's own class, built on the real call's response.
        const queued = decision;
        let real: any;
        const response = (async () => {
          const waited = Date.now();
          try {
            await om.policy.waitInQueue(provider, params, param, scope);
          } catch (error) {
            record(undefined, undefined, "error", "budget_blocked");
            throw error;
          }
          queued.detail = `waited ${((Date.now() - waited) / 1000).toFixed(1)}s for the budget window`;
          params = queued.params;
          started = Date.now();
          real = call();
          return real.responsePromise;
        })();
        response.catch(() => undefined); // the caller sees the error through the APIPromise
        const queuedPromise = new apiPromise(client, response, (c: unknown, props: Obj) => real.parseResponse(c, props));
        observeAsResponse(queuedPromise);
        return queuedPromise;
      }
      decision.detail = "not queued: the first call through this client is let through";
    }
    if (decision) params = decision.params;
    started = Date.now();
    return call();
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

/** `client.withOptions(...)` makes a new client: it comes back wrapped too. */
function rewrapCopies(client: Obj, wrap: (copy: unknown) => unknown): void {
  const original = client.withOptions as (((...args: unknown[]) => unknown) & { __opsmeter?: boolean }) | undefined;
  if (typeof original !== "function" || original.__opsmeter) return;
  const withOptions = (...args: unknown[]): unknown => wrap(original.apply(client, args));
  (withOptions as { __opsmeter?: boolean }).__opsmeter = true;
  client.withOptions = withOptions;
}

const openaiTokensParam = (params: Obj): string =>
  "max_tokens" in params && !("max_completion_tokens" in params) ? "max_tokens" : "max_completion_tokens";

/** Chat completions: a stream's tokens come in its usage chunk, the last before [DONE]. */
const chatCompletions: Api = {
  provider: "openai",
  tokens: (usage) => openaiTokens(usage),
  ending: () => SUCCESS,
  // A stream left or failed before its usage chunk is recorded without tokens, marked opsmeterUsage: "missing" (the
  // prompt is billed all the same).
  streamUsage: (hideUsageChunk) => {
    let usage: Obj | undefined;
    let model: string | undefined;
    return {
      observe: (chunk) => {
        model = chunk.model ?? model;
        if (!chunk.usage) {
          // asked for usage, every chunk carries `usage: null`; the caller did not ask: no usage key, as unwrapped
          if (hideUsageChunk && chunk.usage === null) delete chunk.usage;
          return true;
        }
        usage = chunk.usage;
        return !(hideUsageChunk && !chunk.choices?.length);
      },
      tokens: () => openaiTokens(usage),
      model: () => model,
      ending: () => ({ status: "success", tags: usage ? {} : { opsmeterUsage: "missing" } }),
    };
  },
  prepare: askForStreamUsage,
  tokensParam: openaiTokensParam,
};

/**
 * A Responses API response's end: "failed" is an error with the code of its `error` (e.g. server_error);
 * "incomplete" counts (its usage is billed) and says why in metadata.opsmeterIncomplete.
 */
function responseEnding(response: Obj | undefined): Ending {
  if (response?.status === "failed") {
    return { status: "error", errorCode: String(response.error?.code || "response_failed"), tags: {} };
  }
  if (response?.status === "incomplete") {
    return { status: "success", tags: { opsmeterIncomplete: String(response.incomplete_details?.reason ?? "unknown") } };
  }
  return SUCCESS;
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
        return true;
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
};

/** The same OpenAI client, its chat completions and Responses API (and beta.responses) recorded. Per call:
 * `opsmeter: {endpointTag, userId, promptVersion}`. */
export function wrapOpenAI<T>(om: Opsmeter, client: T): T {
  const c = client as Obj;
  instrument(om, c.chat.completions, chatCompletions);
  for (const resource of [c.responses, c.beta?.responses]) {
    if (resource && typeof resource.create === "function") instrument(om, resource, responses);
  }
  rewrapCopies(c, (copy) => wrapOpenAI(om, copy));
  return client;
}

/** Messages: message_start carries the input side, message_delta the cumulative output (and iterations). */
const messagesApi: Api = {
  provider: "anthropic",
  tokens: (usage) => anthropicTokens(usage),
  ending: () => SUCCESS,
  streamUsage: () => {
    const usage: Obj = {};
    let model: string | undefined;
    const take = (u: Obj | undefined) => {
      for (const [k, v] of Object.entries(u ?? {})) if (v !== null && v !== undefined) usage[k] = v;
    };
    return {
      observe: (event) => {
        if (event.type === "message_start") {
          model = event.message?.model ?? model;
          take(event.message?.usage);
        } else if (event.type === "message_delta") take(event.usage);
        return true;
      },
      tokens: () => (Object.keys(usage).length ? anthropicTokens(usage) : undefined),
      model: () => model,
      ending: () => SUCCESS,
    };
  },
  prepare: (params) => ({ params, hideUsageChunk: false }),
  tokensParam: () => "max_tokens",
};

/** The same Anthropic client, its messages and beta.messages recorded (cache reads and writes counted inside input);
 * their stream() and parse() call create(). */
export function wrapAnthropic<T>(om: Opsmeter, client: T): T {
  const c = client as Obj;
  instrument(om, c.messages, messagesApi);
  const beta = c.beta?.messages;
  if (beta && typeof beta.create === "function") instrument(om, beta, messagesApi);
  rewrapCopies(client as Obj, (copy) => wrapAnthropic(om, copy));
  return client;
}
