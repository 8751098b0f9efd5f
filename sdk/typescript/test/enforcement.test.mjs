// Run by tests/e2e/test_sdk_typescript.py: runtime enforcement against the policy engine and the provider double.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { BudgetExceededError, Opsmeter } from "../dist/index.js";

const env = process.env;
const skip = env.ENFORCE_KEY ? false : "ENFORCE_KEY is not set (run through tests/e2e/test_sdk_typescript.py)";
const messages = [{ role: "user", content: "Summarise the order." }];
const ACTIONS = {
  block: { onBudgetExceeded: "block" },
  clamp: { onBudgetExceeded: "clamp", clampMaxTokens: 64 },
  fallback: { onBudgetExceeded: "fallback", fallbackModels: { "gpt-4o": "gpt-4o-mini" } },
};

async function configure(action, killSwitch) {
  const answer = await fetch(`${env.POLICY_URL}/v1/workspaces/${env.ENFORCE_WORKSPACE}/policy`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${env.ENFORCE_ADMIN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ killSwitch, runtimeActions: ACTIONS[action] }),
  });
  assert.equal(answer.status, 200, await answer.text());
}

async function calls(provider) {
  const all = await (await fetch(`${env.FAKE_ANTHROPIC_URL}/_double/calls`)).json();
  return all.filter((c) => c.provider === provider);
}

async function clients() {
  const om = new Opsmeter(env.ENFORCE_KEY, { baseUrl: env.OPSMETER_URL, policyUrl: env.POLICY_URL, enforcement: true });
  await om.policy.ready(); // enforcement decides from the snapshot: without this the first call is let through
  const openai = om.wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: env.FAKE_OPENAI_URL, maxRetries: 0 }));
  const anthropic = om.wrapAnthropic(new Anthropic({ apiKey: "sk-ant", baseURL: env.FAKE_ANTHROPIC_URL, maxRetries: 0 }));
  return { om, openai, anthropic };
}

test("block throws before the provider is called", { skip }, async () => {
  await configure("block", false);
  const { om, openai } = await clients();
  const before = (await calls("openai")).length;
  await assert.rejects(
    async () => openai.chat.completions.create({ model: "gpt-4o", messages, opsmeter: { endpointTag: "ts.enforce.block" } }),
    (error) => error instanceof BudgetExceededError && error.action === "block",
  );
  assert.equal((await calls("openai")).length, before);
  assert.ok(await om.flush(30_000));
  await om.shutdown();
});

test("clamp lowers max_tokens and fallback swaps the model in what the provider gets", { skip }, async () => {
  await configure("clamp", false);
  let { om, openai, anthropic } = await clients();
  await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 4096, messages, opsmeter: { endpointTag: "ts.enforce.clamp" } });
  assert.equal((await calls("anthropic")).at(-1).body.max_tokens, 64);
  await om.shutdown();
  await configure("fallback", false);
  ({ om, openai } = await clients());
  const reply = await openai.chat.completions.create({ model: "gpt-4o", messages, opsmeter: { endpointTag: "ts.enforce.fallback" } });
  assert.equal((await calls("openai")).at(-1).body.model, "gpt-4o-mini");
  assert.equal(reply.model, "gpt-4o-mini");
  await om.shutdown();
});

test("with the kill switch on nothing changes, and the record says what would have", { skip }, async () => {
  for (const action of ["block", "clamp", "fallback"]) {
    await configure(action, true);
    const { om, openai } = await clients();
    await openai.chat.completions.create({
      model: "gpt-4o",
      max_tokens: 4096,
      messages,
      opsmeter: { endpointTag: `ts.enforce.observe.${action}` },
    });
    const last = (await calls("openai")).at(-1).body;
    assert.equal(last.model, "gpt-4o");
    assert.equal(last.max_tokens, 4096);
    assert.ok(await om.flush(30_000));
    await om.shutdown();
  }
  await configure("block", false);
});
