// Run by tests/e2e/test_sdk_typescript.py against the real local stack and the provider double.
import { test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { Opsmeter } from "../dist/index.js";

const env = process.env;
const gateway = env.OPSMETER_URL;
const skip = gateway ? false : "OPSMETER_URL is not set (run through tests/e2e/test_sdk_typescript.py)";
const one = (n) => ({
  provider: "openai",
  model: "gpt-4o-mini",
  inputTokens: 812,
  outputTokens: 164,
  endpointTag: "ts.bulk",
  userId: `u_${n % 7}`,
  latencyMs: 930,
});

test("10,000 records return at once and are all accepted once", { skip }, async () => {
  const om = new Opsmeter(env.BULK_KEY, { baseUrl: gateway });
  const started = performance.now();
  for (let n = 0; n < 10_000; n++) assert.ok(om.record(one(n)));
  const took = performance.now() - started;
  assert.ok(took < 1000, `10,000 record() calls took ${took} ms`);
  assert.ok(await om.flush(120_000), JSON.stringify(om.stats()));
  const stats = om.stats();
  assert.equal(stats.accepted + stats.duplicates, 10_000, JSON.stringify(stats));
  assert.deepEqual(stats.dropped, {});
  await om.shutdown();
});

test("an unreachable gateway never throws or blocks", { skip }, async () => {
  const om = new Opsmeter("om_live_abc_def", { baseUrl: "http://127.0.0.1:9", maxRetries: 1, backoffBaseMs: 20 });
  const started = performance.now();
  for (let n = 0; n < 1000; n++) om.record(one(n));
  assert.ok(performance.now() - started < 500);
  assert.ok(await om.flush(10_000));
  assert.deepEqual(om.stats().dropped, { network_error: 1000 });
  await om.shutdown();
  assert.equal(om.record(one(0)), null);
});

test("a Free workspace past 120/min gets everything after Retry-After", { skip }, async () => {
  const om = new Opsmeter(env.FREE_KEY, { baseUrl: gateway });
  for (let n = 0; n < 160; n++) om.record(one(n));
  assert.ok(await om.flush(150_000), JSON.stringify(om.stats()));
  const stats = om.stats();
  assert.equal(stats.accepted, 160, JSON.stringify(stats));
  assert.ok(stats.retries >= 1);
  await om.shutdown();
});

test("a quota of 50 pauses telemetry and calls onPlanLimit once", { skip }, async () => {
  const seen = [];
  const om = new Opsmeter(env.QUOTA_KEY, { baseUrl: gateway, onPlanLimit: (f) => seen.push(f) });
  for (let n = 0; n < 80; n++) om.record(one(n));
  assert.ok(await om.flush(30_000));
  for (let n = 0; n < 40; n++) om.record(one(n));
  assert.ok(await om.flush(30_000));
  const stats = om.stats();
  assert.equal(stats.accepted, 50, JSON.stringify(stats));
  assert.deepEqual(stats.dropped, { plan_limit_reached: 70 });
  assert.equal(seen.length, 1);
  assert.equal(seen[0].planLimitReached, true);
  await om.shutdown();
});

test("the real openai and anthropic clients are recorded, streams included", { skip }, async () => {
  const om = new Opsmeter(env.WRAP_KEY, { baseUrl: gateway });
  const openai = om.wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: env.FAKE_OPENAI_URL, maxRetries: 0 }));
  const anthropic = om.wrapAnthropic(new Anthropic({ apiKey: "sk-ant", baseURL: env.FAKE_ANTHROPIC_URL, maxRetries: 0 }));
  const messages = [{ role: "user", content: "Summarise the order." }];
  const tag = { opsmeter: { endpointTag: "ts.openai", userId: "u_ts" } };
  const reply = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, ...tag });
  assert.ok(reply.choices[0].message.content);
  const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, ...tag });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(text.trim(), reply.choices[0].message.content);
  const atag = { opsmeter: { endpointTag: "ts.anthropic" } };
  await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 512, messages, ...atag });
  const events = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 512, messages, stream: true, ...atag });
  const kinds = [];
  for await (const event of events) kinds.push(event.type);
  assert.equal(kinds.at(-1), "message_stop");
  assert.ok(await om.flush(30_000));
  assert.equal(om.stats().accepted, 4, JSON.stringify(om.stats()));
  await om.shutdown();
});
