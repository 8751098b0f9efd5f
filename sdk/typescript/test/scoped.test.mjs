// Scoped budgets (one endpointTag, model or userId) act only on their own calls: the real OpenAI client, wrapped,
// against a local provider, with the runtime policy and ingest answered in memory. Runs on its own (npm test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import OpenAI from "openai";
import { BudgetExceededError, Opsmeter } from "../dist/index.js";

const messages = [{ role: "user", content: "hi" }];
const LATER = "2999-01-01T00:00:00Z";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const budget = (dimension, value, { exceeded = true, periodEnd = LATER } = {}) => ({
  dimension,
  value,
  window: "daily",
  warning: true,
  exceeded,
  periodEnd,
});

/** A runtime-policy answer: the workspace's own budget exceeded or not, these scoped budgets, block when exceeded. */
function policy(scoped = [], { workspace = false, oldServer = false, actions = {} } = {}) {
  const body = {
    workspaceId: "ws_x",
    policyMode: "enforce",
    enforcement: "advisory",
    killSwitch: false,
    budgetWarning: workspace || scoped.some((b) => b.warning),
    budgetExceeded: workspace || scoped.some((b) => b.exceeded),
    exceededWindows: workspace ? [{ window: "daily", periodEnd: LATER }] : [],
    workspaceBudget: { warning: workspace, exceeded: workspace },
    scopedBudgets: scoped,
    runtimeActions: { onBudgetExceeded: "block", ...actions },
  };
  if (oldServer) {
    delete body.workspaceBudget;
    delete body.scopedBudgets;
  }
  return body;
}

/**
 * A chat-completions provider on 127.0.0.1: `models` lists the model of every request it got; it answers as the model
 * `answeredAs` gives the one asked for, else as that one.
 */
async function provider() {
  const models = [];
  const answeredAs = {};
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (part) => (raw += part));
    req.on("end", () => {
      const { model: asked } = JSON.parse(raw);
      models.push(asked);
      const model = answeredAs[asked] ?? asked;
      const message = { role: "assistant", content: "ok", refusal: null };
      const data = JSON.stringify({
        id: "chatcmpl-x",
        object: "chat.completion",
        created: 0,
        model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: "stop" }],
        usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
      });
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
      res.end(data);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}/v1`;
  return { models, answeredAs, url, close: () => new Promise((r) => server.close(r)) };
}

/**
 * A wrapped OpenAI client with enforcement on; `opsmeter.policy` is the runtime policy's answer, `opsmeter.ingestFlags`
 * what ingest answers carry besides the results, `opsmeter.modelNormalized` the modelNormalized an event's model is
 * answered with (if any).
 */
async function setup(t, body, refreshMs = 60_000) {
  const fake = await provider();
  const opsmeter = { policy: body, ingestFlags: {}, modelNormalized: {}, policyGets: 0, events: [] };
  const gateway = async (url, init) => {
    if (String(url).endsWith("/v1/runtime/policy")) {
      opsmeter.policyGets += 1;
      return Response.json(opsmeter.policy);
    }
    const { events } = JSON.parse(init.body);
    opsmeter.events.push(...events);
    const results = events.map(({ model }, index) => {
      const said = opsmeter.modelNormalized[model];
      return { index, httpStatus: 202, ...(said ? { modelNormalized: said } : {}) };
    });
    return Response.json({ results, ...opsmeter.ingestFlags }, { status: 207 });
  };
  const om = new Opsmeter("om_live_x_y", {
    baseUrl: "http://gateway.test",
    fetch: gateway,
    flushIntervalMs: 10,
    enforcement: true,
    policyRefreshIntervalMs: refreshMs,
  });
  await om.policy.ready();
  const openai = om.wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: fake.url, maxRetries: 0 }));
  t.after(async () => {
    await om.shutdown(1000);
    await fake.close();
  });
  /** Whether a call reached the provider (true) or was blocked before any request (false). */
  const goesThrough = async ({ model = "gpt-4o", ...attribution } = {}) => {
    const before = fake.models.length;
    try {
      const reply = await openai.chat.completions.create({ model, messages, opsmeter: attribution });
      assert.equal(reply.choices[0].message.content, "ok");
      assert.equal(fake.models.length, before + 1);
      return true;
    } catch (error) {
      if (!(error instanceof BudgetExceededError)) throw error;
      assert.equal(fake.models.length, before, "a blocked call reached the provider");
      return false;
    }
  };
  return { fake, om, openai, opsmeter, goesThrough };
}

test("a userId budget exceeded blocks that user's calls, not another user's", async (t) => {
  const { fake, om, openai, opsmeter, goesThrough } = await setup(t, policy([budget("userId", "u_42")]));
  await assert.rejects(
    async () => openai.chat.completions.create({ model: "gpt-4o", messages, opsmeter: { userId: "u_42", endpointTag: "scoped.user" } }),
    (error) =>
      error instanceof BudgetExceededError &&
      error.action === "block" &&
      [error.budget, error.budgetValue, error.window].join() === "userId,u_42,daily" &&
      error.message.includes("budget exceeded (userId u_42, daily)"),
  );
  assert.equal(fake.models.length, 0);
  assert.equal(await goesThrough({ userId: "u_7" }), true);
  assert.equal(await goesThrough(), true); // no user: the gateway's "unknown"
  assert.ok(await om.flush(3000));
  const [blocked] = opsmeter.events.filter((e) => e.endpointTag === "scoped.user");
  assert.deepEqual([blocked.userId, blocked.status, blocked.errorCode], ["u_42", "error", "budget_blocked"]);
  assert.equal(blocked.metadata.opsmeterActionDetail, "budget exceeded (userId u_42, daily)");
});

test("an endpointTag budget exceeded blocks that endpoint's calls only", async (t) => {
  const { goesThrough } = await setup(t, policy([budget("endpointTag", "checkout.ai_summary")]));
  assert.equal(await goesThrough({ endpointTag: "checkout.ai_summary" }), false);
  assert.equal(await goesThrough({ endpointTag: "search.rank" }), true);
  assert.equal(await goesThrough(), true);
});

test("a model budget blocks gpt-4o, dated or with a provider path, and not gpt-4o-mini", async (t) => {
  const { fake, goesThrough } = await setup(t, policy([budget("model", "gpt-4o")]));
  for (const model of ["gpt-4o", "gpt-4o-2024-08-06", "openai/GPT-4o"]) assert.equal(await goesThrough({ model }), false, model);
  assert.equal(await goesThrough({ model: "gpt-4o-mini" }), true);
  assert.equal(await goesThrough({ model: "gpt-4o-mini-2024-07-18" }), true);
  assert.deepEqual(fake.models, ["gpt-4o-mini", "gpt-4o-mini-2024-07-18"]);
});

test("a model budget names a model as the gateway does from its first recorded call on", async (t) => {
  // an alias the local rule cannot map: the provider answers it as a dated id, which the gateway names as the budget
  const { fake, om, opsmeter, openai, goesThrough } = await setup(t, policy([budget("model", "claude-x-alias-target")]));
  fake.answeredAs["claude-x-latest"] = "claude-x-20991231";
  opsmeter.modelNormalized["claude-x-20991231"] = "claude-x-alias-target";
  assert.equal(await goesThrough({ model: "claude-x-latest" }), true);
  assert.ok(await om.flush(3000));
  await assert.rejects(
    async () => openai.chat.completions.create({ model: "claude-x-latest", messages }),
    (error) => error instanceof BudgetExceededError && [error.budget, error.budgetValue].join() === "model,claude-x-alias-target",
  );
  assert.equal(await goesThrough({ model: "claude-x-20991231" }), false); // the model the record was sent with
  assert.equal(await goesThrough({ model: "gpt-4o" }), true);
  assert.deepEqual(fake.models, ["claude-x-latest", "gpt-4o"]);
});

test("the gateway's name for a model overrides the local rule", async (t) => {
  // the local rule strips any 8-digit suffix; the gateway keeps one its catalog does not know, and says so when it
  // answers the blocked call's record
  const { fake, om, opsmeter, goesThrough } = await setup(t, policy([budget("model", "gpt-4o")]));
  opsmeter.modelNormalized["gpt-4o-12345678"] = "gpt-4o-12345678";
  assert.equal(await goesThrough({ model: "gpt-4o-12345678" }), false);
  assert.ok(await om.flush(3000));
  assert.equal(await goesThrough({ model: "gpt-4o-12345678" }), true);
  assert.equal(await goesThrough({ model: "gpt-4o" }), false);
  assert.deepEqual(fake.models, ["gpt-4o-12345678"]);
});

test("the workspace budget exceeded blocks every call", async (t) => {
  const { fake, openai, goesThrough } = await setup(t, policy([budget("userId", "u_42", { exceeded: false })], { workspace: true }));
  await assert.rejects(
    async () => openai.chat.completions.create({ model: "gpt-4o-mini", messages, opsmeter: { userId: "u_7" } }),
    (error) => error.budget === "workspace" && error.budgetValue === null && error.message.includes("budget exceeded (workspace)"),
  );
  assert.equal(await goesThrough({ endpointTag: "search.rank", userId: "u_42" }), false);
  assert.deepEqual(fake.models, []);
});

test("an old server's answer (no workspaceBudget) blocks every call, as before", async (t) => {
  const { fake, openai, goesThrough } = await setup(t, policy([budget("userId", "u_42")], { oldServer: true }));
  await assert.rejects(
    async () => openai.chat.completions.create({ model: "gpt-4o-mini", messages, opsmeter: { userId: "u_7" } }),
    (error) => error instanceof BudgetExceededError && error.budget === null,
  );
  assert.equal(await goesThrough({ userId: "u_42" }), false);
  assert.deepEqual(fake.models, []);
});

test("the block lifts once the scoped budget's window has ended, without asking Opsmeter again", async (t) => {
  const soon = new Date(Date.now() + 400).toISOString();
  const { opsmeter, goesThrough } = await setup(t, policy([budget("userId", "u_42", { periodEnd: soon })]));
  assert.equal(await goesThrough({ userId: "u_42" }), false);
  await sleep(500);
  assert.equal(await goesThrough({ userId: "u_42" }), true);
  assert.equal(opsmeter.policyGets, 1);
});

test("a queue that times out names the scoped budget; another user does not wait", async (t) => {
  const body = policy([budget("userId", "u_42")], { actions: { onBudgetExceeded: "queue", queueMaxWaitSeconds: 0.3 } });
  const { openai, goesThrough } = await setup(t, body);
  assert.equal(await goesThrough({ userId: "u_7" }), true); // also the first call through the client: its APIPromise class
  const started = Date.now();
  await assert.rejects(
    async () => openai.chat.completions.create({ model: "gpt-4o", messages, opsmeter: { userId: "u_42" } }),
    (error) =>
      error instanceof BudgetExceededError &&
      error.action === "queue" &&
      error.budget === "userId" &&
      error.message.includes("budget exceeded (userId u_42, daily)"),
  );
  assert.ok(Date.now() - started >= 300);
  const again = Date.now();
  assert.equal(await goesThrough({ userId: "u_7" }), true);
  assert.ok(Date.now() - again < 300);
});

test("with scoped budgets, an ingest answer's other flags ask for the policy early and block no one by themselves", async (t) => {
  const { om, opsmeter, goesThrough } = await setup(t, policy([budget("userId", "u_42", { exceeded: false })]));
  opsmeter.ingestFlags = { budgetWarning: true, budgetExceeded: false, policyMode: "enforce" }; // as the policy says
  assert.equal(await goesThrough({ userId: "u_42" }), true);
  assert.ok(await om.flush(3000));
  await sleep(1100);
  assert.equal(await goesThrough({ userId: "u_42" }), true);
  assert.equal(opsmeter.policyGets, 1, "ingest answers that agree with the snapshot do not ask for the policy");
  // u_42 goes over: ingest answers now say "a budget is exceeded", which cannot say whose
  opsmeter.policy = policy([budget("userId", "u_42")]);
  opsmeter.ingestFlags = { budgetWarning: true, budgetExceeded: true, policyMode: "enforce" };
  om.record({ provider: "openai", model: "gpt-4o", inputTokens: 1, outputTokens: 1, userId: "u_7" });
  assert.ok(await om.flush(3000));
  assert.equal(om.flags.budgetExceeded, true);
  const deadline = Date.now() + 3000;
  while (opsmeter.policyGets < 2 && Date.now() < deadline) {
    assert.equal(await goesThrough({ userId: "u_7" }), true, "the ingest flags are not the workspace's");
    await sleep(50);
  }
  assert.equal(opsmeter.policyGets, 2);
  await om.policy.refresh(); // the early refresh under way: its answer
  assert.equal(await goesThrough({ userId: "u_42" }), false);
  assert.equal(await goesThrough({ userId: "u_7" }), true);
});

test("without scoped budgets, an ingest answer's flags are the workspace's", async (t) => {
  const { om, opsmeter, openai, goesThrough } = await setup(t, policy());
  assert.equal(await goesThrough({ userId: "u_7" }), true);
  opsmeter.ingestFlags = { budgetWarning: true, budgetExceeded: true, policyMode: "enforce" };
  assert.equal(await goesThrough({ userId: "u_7" }), true);
  assert.ok(await om.flush(3000));
  await assert.rejects(
    async () => openai.chat.completions.create({ model: "gpt-4o", messages, opsmeter: { userId: "u_7" } }),
    (error) => error instanceof BudgetExceededError && error.budget === "workspace",
  );
  assert.equal(opsmeter.policyGets, 1);
});
