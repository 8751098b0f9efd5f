// Pure parts of the SDK: provider usage → Opsmeter tokens, runtime-action rules, and record() never throwing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Opsmeter, anthropicTokens, decide, openaiTokens, snapshotFrom } from "../dist/index.js";

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

test("record() never throws and counts what it could not queue", async () => {
  const om = new Opsmeter("", { baseUrl: "http://127.0.0.1:9" });
  assert.equal(om.record({ provider: "p", model: "m", inputTokens: 1, outputTokens: 1 }), null);
  assert.deepEqual(om.stats().dropped, { disabled: 1 });
  await om.shutdown(100);
});
