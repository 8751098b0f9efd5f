// Pure parts of the SDK: provider usage → Opsmeter tokens, runtime-action rules, and record() never throwing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Opsmeter, anthropicTokens, callScope, decide, normalizeModel, openaiTokens, snapshotFrom } from "../dist/index.js";

test("OpenAI usage already counts cached tokens inside prompt_tokens", () => {
  const tokens = openaiTokens({
    prompt_tokens: 1200,
    completion_tokens: 300,
    prompt_tokens_details: { cached_tokens: 1024 },
    completion_tokens_details: { reasoning_tokens: 128 },
  });
  assert.deepEqual(
    [tokens.inputTokens, tokens.outputTokens, tokens.cachedInputTokens, tokens.reasoningTokens],
    [1200, 300, 1024, 128],
  );
});

test("Anthropic cache reads and writes are added into input", () => {
  const tokens = anthropicTokens({ input_tokens: 150, cache_read_input_tokens: 2000, cache_creation_input_tokens: 500, output_tokens: 9 });
  assert.deepEqual([tokens.inputTokens, tokens.cachedInputTokens, tokens.cacheWriteInputTokens], [2650, 2000, 500]);
});

test("Anthropic 1-hour cache writes are taken from usage.cache_creation, a part of the cache writes", () => {
  // the audit's example: 1,000 input and 100,000 cache-write tokens, all with a 1-hour TTL
  const usage = {
    input_tokens: 1000,
    cache_creation_input_tokens: 100_000,
    cache_read_input_tokens: 0,
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 100_000 },
    output_tokens: 500,
  };
  const tokens = anthropicTokens(usage);
  assert.deepEqual(
    [tokens.inputTokens, tokens.cacheWriteInputTokens, tokens.cacheWrite1hInputTokens],
    [101_000, 100_000, 100_000],
  );
  const capped = anthropicTokens({ ...usage, cache_creation_input_tokens: 5 });
  assert.equal(capped.cacheWrite1hInputTokens, 5);
});

test("Anthropic usage without 1-hour cache writes leaves the field out", () => {
  const fiveMinutes = anthropicTokens({
    input_tokens: 1,
    cache_creation_input_tokens: 500,
    cache_creation: { ephemeral_5m_input_tokens: 500, ephemeral_1h_input_tokens: 0 },
    output_tokens: 1,
  });
  const noBreakdown = anthropicTokens({ input_tokens: 1, cache_creation_input_tokens: 500, output_tokens: 1 });
  assert.ok(!("cacheWrite1hInputTokens" in fiveMinutes));
  assert.ok(!("cacheWrite1hInputTokens" in noBreakdown));
});

test("1-hour cache writes go on the wire, and sendCacheWriteTokens: false withholds them with the writes", async () => {
  const sent = [];
  const gateway = async (_url, init) => {
    const { events } = JSON.parse(init.body);
    sent.push(...events);
    const results = events.map(() => ({ httpStatus: 202 }));
    return new Response(JSON.stringify({ results }), { status: 207, headers: { "Content-Type": "application/json" } });
  };
  for (const sendCacheWriteTokens of [true, false]) {
    const om = new Opsmeter("om_live_x_y", { baseUrl: "http://gateway.test", fetch: gateway, flushIntervalMs: 10, sendCacheWriteTokens });
    om.record({ provider: "anthropic", model: "m", inputTokens: 10, outputTokens: 1, cacheWriteInputTokens: 5, cacheWrite1hInputTokens: 3 });
    assert.ok(await om.flush(3000));
    await om.shutdown(1000);
  }
  assert.deepEqual(
    sent.map((record) => [record.cacheWriteInputTokens, record.cacheWrite1hInputTokens]),
    [[5, 3], [undefined, undefined]],
  );
});

const state = (action, extra = {}, policyMode = "enforce") =>
  snapshotFrom({ policyMode, budgetExceeded: true, runtimeActions: { onBudgetExceeded: action, ...extra } });
const params = { model: "gpt-4o", max_tokens: 4096 };

test("clamp and fallback change the params; observe mode only reports", () => {
  assert.equal(decide(state("clamp", { clampMaxTokens: 64 }), "openai", params, "max_tokens").params.max_tokens, 64);
  assert.equal(decide(state("clamp", { clampMaxTokens: 8192 }), "openai", params, "max_tokens"), null);
  const swapped = decide(state("fallback", { fallbackModels: { "gpt-4o": "gpt-4o-mini" } }), "openai", params, "max_tokens");
  assert.equal(swapped.params.model, "gpt-4o-mini");
  const observed = decide(state("block", {}, "observe"), "openai", params, "max_tokens");
  assert.deepEqual([observed.action, observed.mode, observed.params], ["block", "observed", params]);
  assert.equal(decide(snapshotFrom({ budgetExceeded: false, runtimeActions: { onBudgetExceeded: "block" } }), "openai", params, "max_tokens"), null);
});

test("a model is compared as the gateway normalizes it: no provider path, no date; an alias stays as it is", () => {
  const cases = {
    "gpt-4o": "gpt-4o",
    "  GPT-4o ": "gpt-4o",
    "openai/gpt-4o": "gpt-4o",
    "Acme/My-Model": "my-model",
    "bedrock/anthropic/claude-3-5-sonnet": "claude-3-5-sonnet",
    "gpt-4o-2024-08-06": "gpt-4o",
    "claude-3-5-sonnet-20241022": "claude-3-5-sonnet",
    "claude-3-5-sonnet@20240620": "claude-3-5-sonnet",
    "gpt-4o-mini": "gpt-4o-mini",
    "gpt-4o-mini-2024-07-18": "gpt-4o-mini",
    "o1-2024-12-17": "o1",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet-latest", // an alias only the price catalog knows
    "gpt-4-0613": "gpt-4-0613", // not a date
  };
  for (const [model, normalized] of Object.entries(cases)) assert.equal(normalizeModel(model), normalized, model);
});

test("a scoped budget concerns only the calls of its scope; exceeded wins over warning; old answers concern every call", () => {
  const scoped = (dimension, value, exceeded = true) => ({ dimension, value, window: "daily", warning: true, exceeded, periodEnd: "2999-01-01T00:00:00Z" });
  const answer = (budgets, workspace = { warning: false, exceeded: false }) =>
    snapshotFrom({
      policyMode: "enforce",
      budgetWarning: true,
      budgetExceeded: true,
      workspaceBudget: workspace,
      scopedBudgets: budgets,
      runtimeActions: { onBudgetExceeded: "block", onBudgetWarning: "clamp", clampMaxTokens: 64 },
    });
  const action = (state, endpointTag, model, userId) => decide(state, "openai", { ...params, model }, "max_tokens", callScope(endpointTag, model, userId))?.action ?? null;
  const both = answer([scoped("userId", "u_42"), scoped("endpointTag", "checkout.ai_summary", false), scoped("model", "gpt-4o"), "odd", { dimension: "userId" }]);
  assert.equal(both.scopedBudgets.length, 3);
  assert.equal(action(both, "checkout.ai_summary", "gpt-4o-mini", "u_42"), "block");
  assert.equal(action(both, "checkout.ai_summary", "gpt-4o-mini", "u_7"), "clamp");
  assert.equal(action(both, undefined, "gpt-4o-mini", "u_7"), null);
  assert.equal(action(both, undefined, "gpt-4o-2024-08-06", undefined), "block");
  const detail = decide(both, "openai", params, "max_tokens", callScope("x", "gpt-4o-mini", "u_42")).detail;
  assert.equal(detail, "budget exceeded (userId u_42, daily)");
  assert.equal(action(answer([scoped("endpointTag", "unknown")]), "", "m", undefined), "block"); // no tag: "unknown"
  const workspace = answer([], { warning: true, exceeded: true });
  assert.equal(decide(workspace, "openai", params, "max_tokens", callScope("a", "b", "c")).detail, "budget exceeded (workspace)");
  const old = snapshotFrom({ policyMode: "enforce", budgetExceeded: true, runtimeActions: { onBudgetExceeded: "block" } });
  assert.equal(old.workspaceBudget, null);
  assert.equal(action(old, "any.tag", "gpt-4o-mini", "anyone"), "block");
});

test("record() never throws and counts what it could not queue", async () => {
  const om = new Opsmeter("", { baseUrl: "http://127.0.0.1:9" });
  assert.equal(om.record({ provider: "p", model: "m", inputTokens: 1, outputTokens: 1 }), null);
  assert.deepEqual(om.stats().dropped, { disabled: 1 });
  await om.shutdown(100);
});

test("the SDK's own metadata keys never push a record past the 20 keys ingest accepts", async () => {
  const { withSdkTags } = await import("../dist/wrappers.js");
  const own = Object.fromEntries(Array.from({ length: 20 }, (_, n) => [`k${n}`, n]));
  const full = withSdkTags(own, { opsmeterUsage: "missing", opsmeterAction: "block" });
  assert.deepEqual(full, own);
  const roomy = withSdkTags({ tenantId: "t1" }, { opsmeterUsage: "missing" });
  assert.deepEqual(roomy, { tenantId: "t1", opsmeterUsage: "missing" });
  const nineteen = withSdkTags(Object.fromEntries(Array.from({ length: 19 }, (_, n) => [`k${n}`, n])), { a: 1, b: 2 });
  assert.equal(Object.keys(nineteen).length, 20);
});
