// Instrumented provider clients: the client is returned as given, its chat.completions.create (OpenAI) or
// messages.create (Anthropic) replaced by a recording one that returns the client's own APIPromise. Each call is
// recorded once; a stream when it ends (from its final usage), fails, or is left early by the caller.

import type { Opsmeter, RecordInput } from "./client.js";
import { BudgetExceededError, type Decision } from "./enforcement.js";

export interface Tokens {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number;
  cacheWriteInputTokens?: number;
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

/** Anthropic reports cache reads and writes apart from input_tokens: SPEC §5 counts them inside. */
export function anthropicTokens(usage: Obj | null | undefined): Tokens | undefined {
  if (!usage) return undefined;
  const reads = num(usage.cache_read_input_tokens);
  const writes = num(usage.cache_creation_input_tokens);
  return {
    inputTokens: (num(usage.input_tokens) ?? 0) + (reads ?? 0) + (writes ?? 0),
    outputTokens: num(usage.output_tokens) ?? 0,
    cachedInputTokens: reads,
    cacheWriteInputTokens: writes,
    reasoningTokens: num(usage.output_tokens_details?.thinking_tokens),
  };
}

const OWN = "opsmeter";

function failureCode(error: unknown): string {
  const status = (error as { status?: unknown } | null)?.status;
  return typeof status === "number" && status ? `http_${status}` : ((error as Error | null)?.name ?? "Error");
}

function instrument(
  om: Opsmeter,
  resource: Obj,
  provider: string,
  tokens: (usage: Obj | undefined) => Tokens | undefined,
  streamUsage: () => { observe: (item: Obj) => void; tokens: () => Tokens | undefined; model: () => string | undefined },
  prepare: (params: Obj) => Obj,
  tokensParam: (params: Obj) => string,
): void {
  const original = resource.create as ((...args: any[]) => any) & { __opsmeter?: boolean };
  if (original.__opsmeter) return;
  const create = (body: Obj, options?: Obj): unknown => {
    const { [OWN]: own, ...rest } = body ?? {};
    const attribution = (own ?? {}) as Attribution;
    let params = prepare(rest);
    let started = Date.now();
    let decision: Decision | null = null;
    let recorded = false; // one record per call, whatever happens after the first
    const record = (t: Tokens | undefined, model: string | undefined, status: "success" | "error", errorCode?: string) => {
      if (recorded) return;
      recorded = true;
      const tags = decision
        ? {
            opsmeterAction: decision.action,
            opsmeterActionMode: decision.mode,
            ...(decision.detail ? { opsmeterActionDetail: decision.detail.slice(0, 200) } : {}),
          }
        : {};
      const metadata = { ...(attribution.metadata ?? {}), ...tags };
      om.record({
        provider,
        model: String(model ?? params.model ?? "unknown"),
        ...(t ?? { inputTokens: 0, outputTokens: 0 }),
        latencyMs: Date.now() - started,
        status,
        errorCode,
        endpointTag: attribution.endpointTag,
        userId: attribution.userId,
        promptVersion: attribution.promptVersion,
        metadata: Object.keys(metadata).length ? metadata : undefined,
      });
    };
    const instrumentResult = (result: Obj): void => {
      if (!params.stream) return record(tokens(result?.usage), result?.model, "success");
      const seen = streamUsage();
      const iterable = result as any;
      const source = { [Symbol.asyncIterator]: iterable[Symbol.asyncIterator].bind(result) as () => AsyncIterator<Obj> };
      // Recorded once: as an error if the stream fails, else when it ends or the caller leaves it early (a
      // `break` calls return(), which also closes the provider's stream), with the usage seen so far.
      iterable[Symbol.asyncIterator] = async function* () {
        try {
          for await (const item of source) {
            seen.observe(item);
            yield item;
          }
        } catch (error) {
          record(seen.tokens(), seen.model(), "error", failureCode(error));
          throw error;
        } finally {
          record(seen.tokens(), seen.model(), "success");
        }
      };
    };
    // The provider's own promise (the client's APIPromise, with .withResponse() and the rest) goes back to the
    // caller unchanged; the record hangs off it. Its handlers run in the order they were attached, so a stream
    // is instrumented before the caller's code sees it.
    const call = (): unknown => {
      let promise: any;
      try {
        promise = original.call(resource, params, options);
      } catch (error) {
        record(undefined, undefined, "error", failureCode(error));
        return Promise.reject(error);
      }
      if (!promise || typeof promise.then !== "function") {
        instrumentResult(promise);
        return promise;
      }
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
    };
    if (!om.policy.enabled) return call();
    // Runtime enforcement waits for the workspace policy first, so the caller gets a plain Promise.
    return (async () => {
      await om.policy.fresh();
      const param = tokensParam(params);
      decision = om.policy.decide(provider, params, param);
      if (decision && decision.action === "queue" && decision.mode === "applied") {
        const waited = Date.now();
        try {
          await om.policy.waitInQueue(provider, params, param);
        } catch (error) {
          record(undefined, undefined, "error", "budget_blocked");
          throw error;
        }
        decision.detail = `waited ${((Date.now() - waited) / 1000).toFixed(1)}s for the budget window`;
      }
      if (decision && decision.action === "block" && decision.mode === "applied") {
        record(undefined, undefined, "error", "budget_blocked");
        throw new BudgetExceededError("the workspace budget is exceeded; its runtime action blocks provider calls", "block");
      }
      if (decision) params = decision.params;
      started = Date.now();
      return await call();
    })();
  };
  (create as { __opsmeter?: boolean }).__opsmeter = true;
  resource.create = create;
}

/** The same OpenAI client, its chat completions recorded. Per call: `opsmeter: {endpointTag, userId, promptVersion}`. */
export function wrapOpenAI<T>(om: Opsmeter, client: T): T {
  instrument(
    om,
    (client as Obj).chat.completions,
    "openai",
    (usage) => openaiTokens(usage),
    () => {
      let usage: Obj | undefined;
      let model: string | undefined;
      return {
        observe: (chunk) => {
          if (chunk.usage) usage = chunk.usage;
          model = chunk.model ?? model;
        },
        tokens: () => openaiTokens(usage),
        model: () => model,
      };
    },
    (params) => (params.stream && !("stream_options" in params) ? { ...params, stream_options: { include_usage: true } } : params),
    (params) => ("max_tokens" in params && !("max_completion_tokens" in params) ? "max_tokens" : "max_completion_tokens"),
  );
  return client;
}

/** The same Anthropic client, its messages recorded (cache reads and writes counted inside input). */
export function wrapAnthropic<T>(om: Opsmeter, client: T): T {
  instrument(
    om,
    (client as Obj).messages,
    "anthropic",
    (usage) => anthropicTokens(usage),
    () => {
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
        },
        tokens: () => (Object.keys(usage).length ? anthropicTokens(usage) : undefined),
        model: () => model,
      };
    },
    (params) => params,
    () => "max_tokens",
  );
  return client;
}
