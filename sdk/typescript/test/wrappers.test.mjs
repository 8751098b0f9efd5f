// The wrappers around the real openai and anthropic clients, pointed at a local fake provider that answers with
// the providers' response shapes (those of libs/runtime's ProviderDouble), recording into a captured gateway.
// Runs on its own (npm test): one record per call, whatever the stream does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";
import { BudgetExceededError, Opsmeter } from "../dist/index.js";

const REPLY = "The quick brown fox jumps over the lazy dog.";
const OPENAI_USAGE = {
  prompt_tokens: 1200,
  completion_tokens: 300,
  total_tokens: 1500,
  prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 128, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};
const anthropicUsage = (output_tokens) => ({
  input_tokens: 150,
  cache_creation_input_tokens: 500,
  cache_read_input_tokens: 2000,
  cache_creation: { ephemeral_5m_input_tokens: 500, ephemeral_1h_input_tokens: 0 },
  output_tokens,
  service_tier: "standard",
});
const messages = [{ role: "user", content: "Summarise the order." }];

function openaiAnswer(body) {
  const id = "chatcmpl-fake";
  const created = Math.floor(Date.now() / 1000);
  const model = body.model;
  if (!body.stream) {
    const message = { role: "assistant", content: REPLY, refusal: null, annotations: [] };
    const choices = [{ index: 0, message, logprobs: null, finish_reason: "stop" }];
    return { json: { id, object: "chat.completion", created, model, choices, usage: OPENAI_USAGE } };
  }
  const withUsage = Boolean(body.stream_options?.include_usage);
  const chunk = (choices, usage = null) =>
    `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices, ...(withUsage ? { usage } : {}) })}\n\n`;
  const events = [chunk([{ index: 0, delta: { role: "assistant", content: "", refusal: null }, finish_reason: null }])];
  for (const word of REPLY.split(" ")) {
    events.push(chunk([{ index: 0, delta: { content: `${word} ` }, logprobs: null, finish_reason: null }]));
  }
  events.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]));
  if (withUsage) events.push(chunk([], OPENAI_USAGE));
  events.push("data: [DONE]\n\n");
  // a failure mid-stream, as OpenAI sends one: a data line carrying an error object
  const error = { message: "The server had an error", type: "server_error", param: null, code: null };
  const failure = `data: ${JSON.stringify({ error })}\n\n`;
  return { events, failure };
}

/** With `usage` (an Anthropic usage object, iterations and all), the message has it, and a stream's message_delta. */
function anthropicAnswer(body, usage) {
  const message = {
    id: "msg_fake",
    type: "message",
    role: "assistant",
    model: body.model,
    content: [{ type: "text", text: REPLY }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: usage ?? anthropicUsage(400),
  };
  if (!body.stream) return { json: message };
  const { iterations: _, ...started } = usage ?? anthropicUsage(1);
  const event = (name, data) => `event: ${name}\ndata: ${JSON.stringify({ type: name, ...data })}\n\n`;
  const events = [
    event("message_start", { message: { ...message, content: [], stop_reason: null, usage: started } }),
    event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    event("ping", {}),
    ...REPLY.split(" ").map((word) => event("content_block_delta", { index: 0, delta: { type: "text_delta", text: `${word} ` } })),
    event("content_block_stop", { index: 0 }),
    event("message_delta", { delta: { stop_reason: "end_turn", stop_sequence: null }, usage: usage ?? { output_tokens: 400 } }),
    event("message_stop", {}),
  ];
  // a failure mid-stream, as Anthropic sends one: an error event
  const failure = event("error", { error: { type: "overloaded_error", message: "Overloaded" } });
  return { events, failure };
}

// The Responses API (POST /v1/responses): its usage counts the cached tokens inside input, the reasoning inside output.
const RESPONSES_USAGE = {
  input_tokens: 900,
  input_tokens_details: { cached_tokens: 512 },
  output_tokens: 250,
  output_tokens_details: { reasoning_tokens: 64 },
  total_tokens: 1150,
};
const RESPONSES_FAILURE = { code: "server_error", message: "The model failed to generate a response." };

const outputMessage = (status, text) => ({
  id: "msg_fake",
  type: "message",
  status,
  role: "assistant",
  content: text ? [{ type: "output_text", text, annotations: [], logprobs: [] }] : [],
});

/** What a background response cancelled while it ran carries: the input, and the output generated until then. */
const RESPONSES_CANCELLED_USAGE = {
  input_tokens: 900,
  input_tokens_details: { cached_tokens: 0 },
  output_tokens: 40,
  output_tokens_details: { reasoning_tokens: 40 },
  total_tokens: 940,
};

/**
 * A `response` object with `status` (queued, in_progress, completed, incomplete, failed, cancelled), as OpenAI sends
 * it; `background` (a background response's id) gives it that id and `background: true`.
 */
function responseObject(model, status, text = REPLY, background = undefined) {
  const ended = !["queued", "in_progress", "cancelled"].includes(status);
  return {
    id: background ?? "resp_fake",
    object: "response",
    created_at: 1767225600,
    status,
    error: status === "failed" ? RESPONSES_FAILURE : null,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: null,
    max_output_tokens: null,
    model,
    output: ended && status !== "failed" ? [outputMessage(status === "completed" ? "completed" : "incomplete", text)] : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: true,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    usage: ended && status !== "failed" ? RESPONSES_USAGE : status === "cancelled" ? RESPONSES_CANCELLED_USAGE : null,
    user: null,
    metadata: {},
    ...(background ? { background: true } : {}),
  };
}

/** The answer to POST /v1/responses: the response, or its events; `ending` says how it ends (completed by default). */
function responsesAnswer(body, ending = "completed") {
  const model = body.model;
  const schema = body.text?.format?.type === "json_schema";
  const text = schema ? '{"day":"Monday"}' : REPLY;
  if (!body.stream) return { json: responseObject(model, ending, text) };
  const part = { item_id: "msg_fake", output_index: 0, content_index: 0 };
  const sent = [
    ["response.created", { response: responseObject(model, "in_progress") }],
    ["response.in_progress", { response: responseObject(model, "in_progress") }],
    ["response.output_item.added", { output_index: 0, item: outputMessage("in_progress", "") }],
    ["response.content_part.added", { ...part, part: { type: "output_text", text: "", annotations: [] } }],
    ...text.split(" ").map((word) => ["response.output_text.delta", { ...part, delta: `${word} `, logprobs: [] }]),
  ];
  if (ending !== "failed") {
    sent.push(
      ["response.output_text.done", { ...part, text, logprobs: [] }],
      ["response.content_part.done", { ...part, part: { type: "output_text", text, annotations: [] } }],
      ["response.output_item.done", { output_index: 0, item: outputMessage(ending, text) }],
    );
  }
  sent.push([`response.${ending}`, { response: responseObject(model, ending, text) }]);
  const event = ([name, data], n) =>
    `event: ${name}\ndata: ${JSON.stringify({ type: name, sequence_number: n, ...data })}\n\n`;
  // a failure mid-stream, as the Responses API sends one: an error event (the client passes it on, it does not throw)
  const failure = event(["error", { code: "server_error", message: "The server had an error", param: null }], 3);
  return { events: sent.map(event), failure };
}

/**
 * The background Responses API: POST /v1/responses with `background: true` (not streamed) answers `queued` at once
 * and runs through `fake.plan` (the statuses GET /v1/responses/{id} answers in turn, the last one from then on;
 * in_progress then completed by default); POST /v1/responses/{id}/cancel ends it `cancelled`. An id it never gave
 * is a 404, as OpenAI answers one.
 */
function backgroundAnswer(fake, method, path, body) {
  const [, id, cancel] = path.match(/\/responses\/([^/]+)(\/cancel)?$/) ?? [];
  if (!id) {
    const made = `resp_bg_${fake.background.size + 1}`;
    fake.background.set(made, { model: body.model, plan: fake.plan ?? ["in_progress", "completed"] });
    fake.plan = null;
    return { json: responseObject(body.model, "queued", REPLY, made) };
  }
  const run = fake.background.get(id);
  if (!run) {
    const error = { message: `Response with id '${id}' not found.`, type: "invalid_request_error", param: null, code: null };
    return { status: 404, json: { error } };
  }
  if (cancel && method === "POST") run.plan = ["cancelled"];
  const status = run.plan.length > 1 ? run.plan.shift() : run.plan[0];
  return { json: responseObject(run.model, status, REPLY, id) };
}

/**
 * A local provider. `fake.next = "500"` makes the next call answer 500; `fake.next = "fail"` makes the next
 * stream send three events, then an error; `fake.next = "hold"` makes it send three events, then wait (up to
 * 5 s) before the rest: a caller that leaves early is seen in `fake.streams` as `closedEarly`. For the Responses API,
 * `fake.next = "failed"` / `"incomplete"` makes the next response (or stream) end that way; a background one is
 * answered by backgroundAnswer.
 */
async function fakeProvider() {
  const fake = { next: null, streams: [], bodies: [], anthropicUsage: null, background: new Map(), plan: null };
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (part) => (raw += part));
    req.on("end", async () => {
      const body = raw ? JSON.parse(raw) : {};
      const path = new URL(req.url, "http://fake").pathname;
      if ((body.background && !body.stream) || /\/responses\/[^/]+(\/cancel)?$/.test(path)) {
        const { status = 200, json } = backgroundAnswer(fake, req.method, path, body);
        const data = JSON.stringify(json);
        res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data), "x-request-id": "req_fake" });
        return res.end(data);
      }
      fake.bodies.push(body);
      const responses = path.endsWith("/responses");
      const ending = responses && ["failed", "incomplete"].includes(fake.next) ? fake.next : undefined;
      if (ending) fake.next = null;
      const answer = responses
        ? responsesAnswer(body, ending)
        : req.url.endsWith("/chat/completions")
          ? openaiAnswer(body)
          : anthropicAnswer(body, fake.anthropicUsage);
      if (answer.json && fake.next !== "500") {
        const data = JSON.stringify(answer.json);
        res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data), "x-request-id": "req_fake" });
        return res.end(data);
      }
      const mode = fake.next;
      fake.next = null;
      if (mode === "500") {
        const error = JSON.stringify({ error: { message: "Injected failure", type: "server_error", param: null, code: null } });
        res.writeHead(500, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(error) });
        return res.end(error);
      }
      const stream = { closedEarly: false };
      fake.streams.push(stream);
      let ended = false;
      const closed = new Promise((resolve) =>
        res.on("close", () => {
          stream.closedEarly = !ended;
          resolve();
        }),
      );
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", "x-request-id": "req_fake" });
      const events = mode ? [...answer.events.slice(0, 3), ...(mode === "fail" ? [answer.failure] : [])] : answer.events;
      for (const part of events) res.write(part);
      if (mode === "hold") {
        let timer;
        await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
        clearTimeout(timer);
        if (!res.destroyed) for (const part of answer.events.slice(3)) res.write(part);
      }
      ended = true;
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  fake.url = `http://127.0.0.1:${server.address().port}`;
  fake.close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return fake;
}

/**
 * An Opsmeter client whose batches land in `sent` (a 207 gateway), and both providers' clients, wrapped. With
 * `policy` (a function giving the GET /v1/runtime/policy answer's body, or null for a 404) enforcement is on.
 */
async function setup(t, { policy, ...options } = {}) {
  const fake = await fakeProvider();
  const sent = [];
  const gateway = async (url, init) => {
    if (String(url).endsWith("/v1/runtime/policy")) {
      const body = policy?.();
      return body ? Response.json(body) : new Response("{}", { status: 404 });
    }
    const { events } = JSON.parse(init.body);
    sent.push(...events);
    const results = events.map(() => ({ httpStatus: 202 }));
    const { budgetWarning, budgetExceeded, policyMode } = policy?.() ?? {}; // an ingest answer carries the flags too
    const answer = { results, budgetWarning, budgetExceeded, policyMode };
    return new Response(JSON.stringify(answer), { status: 207, headers: { "Content-Type": "application/json" } });
  };
  const om = new Opsmeter("om_live_x_y", {
    baseUrl: "http://gateway.test",
    fetch: gateway,
    flushIntervalMs: 10,
    enforcement: Boolean(policy),
    ...options,
  });
  const openai = om.wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0 }));
  const anthropic = om.wrapAnthropic(new Anthropic({ apiKey: "sk-ant", baseURL: fake.url, maxRetries: 0 }));
  t.after(async () => {
    await om.shutdown(1000);
    await fake.close();
  });
  /** The records sent for one endpoint tag, once everything recorded has been sent. */
  const records = async (endpointTag) => {
    await new Promise((resolve) => setTimeout(resolve, 50)); // room for a late, second record
    assert.ok(await om.flush(3000), JSON.stringify(om.stats()));
    return sent.filter((record) => record.endpointTag === endpointTag);
  };
  return { fake, om, openai, anthropic, records, sent };
}

const until = async (check, timeoutMs = 3000) => {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  return check();
};

test("a wrapped Anthropic call sends its cache writes as cacheWriteInputTokens by default", async (t) => {
  const { anthropic, records } = await setup(t);
  const tag = { opsmeter: { endpointTag: "cache.anthropic" } };
  const message = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 512, messages, ...tag });
  const [record, ...more] = await records("cache.anthropic");
  assert.deepEqual(more, []);
  assert.equal(record.cacheWriteInputTokens, message.usage.cache_creation_input_tokens); // 500: priced as writes
  assert.equal(record.cachedInputTokens, message.usage.cache_read_input_tokens);
  assert.equal(record.inputTokens, 150 + 2000 + 500); // reads and writes counted inside input (SPEC §5)
});

test("a wrapped stream that fails mid-way is recorded once, as an error", async (t) => {
  const { fake, openai, anthropic, records } = await setup(t);

  fake.next = "fail"; // message_start (usage) arrives, then an error event
  const atag = { opsmeter: { endpointTag: "fail.anthropic" } };
  const events = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 512, messages, stream: true, ...atag });
  const kinds = [];
  await assert.rejects(async () => {
    for await (const event of events) kinds.push(event.type);
  }, Anthropic.APIError);
  assert.equal(kinds[0], "message_start");
  const [failed, ...more] = await records("fail.anthropic");
  assert.deepEqual(more, [], "a failed stream is recorded once");
  assert.equal(failed.status, "error");
  assert.equal(failed.errorCode, "overloaded_error", "the error event's own type, not the stream's HTTP status");
  assert.deepEqual([failed.inputTokens, failed.cachedInputTokens, failed.cacheWriteInputTokens], [2650, 2000, 500]);

  fake.next = "fail";
  const tag = { opsmeter: { endpointTag: "fail.openai" } };
  const chunks = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, ...tag });
  await assert.rejects(async () => {
    for await (const _ of chunks);
  }, OpenAI.APIError);
  const [failedOpenAI, ...moreOpenAI] = await records("fail.openai");
  assert.deepEqual(moreOpenAI, []);
  assert.equal(failedOpenAI.status, "error");
  assert.equal(failedOpenAI.errorCode, "server_error", "the error object's type");
  assert.equal(failedOpenAI.metadata?.opsmeterUsage, "missing");
});

test("a wrapped stream the caller leaves early is recorded once and its provider request is closed", async (t) => {
  const { fake, openai, anthropic, records } = await setup(t);

  fake.next = "hold";
  const tag = { opsmeter: { endpointTag: "early.openai" } };
  const chunks = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, ...tag });
  let seen = 0;
  for await (const _ of chunks) if (++seen === 2) break; // before the usage chunk
  const [left, ...more] = await records("early.openai");
  assert.deepEqual(more, []);
  assert.deepEqual([left.status, left.model, left.inputTokens, left.outputTokens], ["success", "gpt-4o-mini", 0, 0]);
  assert.equal(left.metadata?.opsmeterUsage, "missing", "a stream left before its usage chunk says so");
  assert.ok(await until(() => fake.streams.at(-1).closedEarly), "the provider's stream is closed when the caller leaves");

  fake.next = "hold";
  const atag = { opsmeter: { endpointTag: "early.anthropic" } };
  const events = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 512, messages, stream: true, ...atag });
  for await (const event of events) if (event.type === "message_start") break;
  const [leftAnthropic, ...moreAnthropic] = await records("early.anthropic");
  assert.deepEqual(moreAnthropic, []);
  assert.deepEqual([leftAnthropic.status, leftAnthropic.inputTokens, leftAnthropic.outputTokens], ["success", 2650, 1]);
  assert.ok(await until(() => fake.streams.at(-1).closedEarly));
});

test("a wrapped create() returns the client's own APIPromise: .withResponse() works and the call is recorded once", async (t) => {
  const { fake, openai, anthropic, records } = await setup(t);
  const tag = { opsmeter: { endpointTag: "promise.openai" } };

  const { data, response, request_id } = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, ...tag }).withResponse();
  assert.equal(data.choices[0].message.content, REPLY);
  assert.deepEqual([response.status, request_id], [200, "req_fake"]);
  const { data: stream } = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, ...tag }).withResponse();
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  assert.equal(text.trim(), REPLY);
  fake.next = "500";
  const failing = openai.chat.completions.create({ model: "gpt-4o-mini", messages, ...tag });
  await assert.rejects(failing.withResponse(), OpenAI.InternalServerError);
  const sent = await records("promise.openai");
  assert.deepEqual(
    sent.map((r) => [r.status, r.errorCode, r.inputTokens, r.outputTokens, r.cachedInputTokens]),
    [
      ["success", undefined, 1200, 300, 1024],
      ["success", undefined, 1200, 300, 1024],
      ["error", "http_500", 0, 0, undefined],
    ],
  );

  const { data: message } = await anthropic.messages
    .create({ model: "claude-sonnet-4-5", max_tokens: 512, messages, opsmeter: { endpointTag: "promise.anthropic" } })
    .withResponse();
  assert.equal(message.usage.cache_creation_input_tokens, 500);
  const [record, ...more] = await records("promise.anthropic");
  assert.deepEqual(more, []);
  assert.deepEqual([record.status, record.inputTokens, record.cacheWriteInputTokens], ["success", 2650, 500]);
});

const exceeded = (runtimeActions) => ({ policyMode: "enforce", budgetWarning: true, budgetExceeded: true, runtimeActions });

/** parse(), chat.completions.stream() and messages.stream() through the wrapped clients; what each call gave. */
async function helpers(openai, anthropic, endpointTag) {
  const opsmeter = { endpointTag };
  const parsed = await openai.chat.completions.parse({ model: "gpt-4o-mini", max_tokens: 4096, messages, opsmeter });
  const chat = openai.chat.completions.stream({ model: "gpt-4o-mini", max_tokens: 4096, messages, opsmeter });
  const completion = await chat.finalChatCompletion();
  const message = await anthropic.messages.stream({ model: "claude-sonnet-4-5", max_tokens: 4096, messages, opsmeter }).finalMessage();
  return { parsed, completion, message };
}

test("parse(), chat.completions.stream() and messages.stream() work through the wrappers and are recorded once", async (t) => {
  const { openai, anthropic, records } = await setup(t);
  const { parsed, completion, message } = await helpers(openai, anthropic, "helpers.plain");
  assert.equal(parsed.choices[0].message.content, REPLY);
  assert.equal(completion.choices[0].message.content.trim(), REPLY);
  assert.equal(message.usage.output_tokens, 400);
  const sent = await records("helpers.plain");
  assert.deepEqual(
    sent.map((r) => [r.provider, r.status, r.inputTokens, r.outputTokens]),
    [
      ["openai", "success", 1200, 300],
      ["openai", "success", 1200, 300],
      ["anthropic", "success", 2650, 400],
    ],
  );
});

test("with enforcement on, the helpers still get the client's APIPromise and the action applies", async (t) => {
  const { fake, om, openai, anthropic, records } = await setup(t, {
    policy: () => exceeded({ onBudgetExceeded: "clamp", clampMaxTokens: 64 }),
  });
  await om.policy.ready();
  const { parsed, completion, message } = await helpers(openai, anthropic, "helpers.enforced");
  assert.equal(parsed.choices[0].message.content, REPLY);
  assert.equal(completion.choices[0].message.content.trim(), REPLY);
  assert.equal(message.usage.output_tokens, 400);
  assert.deepEqual(
    fake.bodies.map((b) => b.max_tokens),
    [64, 64, 64],
  );
  const sent = await records("helpers.enforced");
  assert.deepEqual(
    sent.map((r) => [r.provider, r.status, r.outputTokens, r.metadata?.opsmeterAction]),
    [
      ["openai", "success", 300, "clamp"],
      ["openai", "success", 300, "clamp"],
      ["anthropic", "success", 400, "clamp"],
    ],
  );
});

test("with block applied, parse() and messages.stream() fail with BudgetExceededError and the provider is not called", async (t) => {
  const { fake, om, openai, anthropic, records } = await setup(t, { policy: () => exceeded({ onBudgetExceeded: "block" }) });
  await om.policy.ready();
  const opsmeter = { endpointTag: "helpers.blocked" };
  await assert.rejects(
    async () => openai.chat.completions.parse({ model: "gpt-4o-mini", messages, opsmeter }),
    (error) => error instanceof BudgetExceededError && error.action === "block",
  );
  const stream = anthropic.messages.stream({ model: "claude-sonnet-4-5", max_tokens: 64, messages, opsmeter });
  // the helper turns any error into an AnthropicError, the BudgetExceededError its cause
  await assert.rejects(stream.finalMessage(), (error) => error.cause instanceof BudgetExceededError);
  assert.equal(fake.bodies.length, 0);
  const sent = await records("helpers.blocked");
  assert.deepEqual(
    sent.map((r) => [r.status, r.errorCode]),
    [
      ["error", "budget_blocked"],
      ["error", "budget_blocked"],
    ],
  );
});

test("queue waits inside the client's APIPromise until the budget window resets", async (t) => {
  let state = null;
  const { fake, om, openai, records } = await setup(t, { policy: () => state, policyRefreshIntervalMs: 200 });
  const opsmeter = { endpointTag: "helpers.queued" };
  await openai.chat.completions.create({ model: "gpt-4o-mini", messages, opsmeter }); // no policy yet: let through
  state = exceeded({ onBudgetExceeded: "queue", queueMaxWaitSeconds: 5 });
  await om.policy.refresh();
  const started = Date.now();
  setTimeout(() => (state = { policyMode: "enforce", budgetExceeded: false }), 400);
  const { data } = await openai.chat.completions.parse({ model: "gpt-4o-mini", messages, opsmeter }).withResponse();
  assert.equal(data.choices[0].message.content, REPLY);
  assert.ok(Date.now() - started >= 350, "the call did not wait");
  assert.equal(fake.bodies.length, 2);
  const sent = await records("helpers.queued");
  assert.deepEqual(
    sent.map((r) => [r.status, r.metadata?.opsmeterAction]),
    [
      ["success", undefined],
      ["success", "queue"],
    ],
  );
});

test("an unreachable policy and provider: the caller gets the error, nothing is left unhandled", async (t) => {
  const unhandled = [];
  const collect = (reason) => unhandled.push(reason);
  process.on("unhandledRejection", collect);
  t.after(() => process.off("unhandledRejection", collect));
  const { om } = await setup(t, { policy: () => null });
  const openai = om.wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: "http://127.0.0.1:9/v1", maxRetries: 0 }));
  const started = Date.now();
  await assert.rejects(openai.chat.completions.parse({ model: "gpt-4o-mini", messages }), OpenAI.APIConnectionError);
  await assert.rejects(openai.chat.completions.create({ model: "gpt-4o-mini", messages }), OpenAI.APIConnectionError);
  openai.chat.completions.create({ model: "gpt-4o-mini", messages }); // never awaited
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.ok(Date.now() - started < 2000, "calls waited for the unreachable policy");
  assert.deepEqual(unhandled, []);
});

test("a client made by withOptions() is recorded too, and stream_options of the caller's own still ask for usage", async (t) => {
  const { fake, openai, anthropic, records } = await setup(t);
  const opsmeter = { endpointTag: "copies" };
  await openai.withOptions({ timeout: 5000 }).withOptions({ maxRetries: 0 }).chat.completions.create({ model: "gpt-4o-mini", messages, opsmeter });
  await anthropic.withOptions({ timeout: 5000 }).messages.create({ model: "claude-sonnet-4-5", max_tokens: 64, messages, opsmeter });
  const stream = await openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages,
    stream: true,
    stream_options: { include_obfuscation: false },
    opsmeter,
  });
  for await (const _chunk of stream);
  assert.deepEqual(fake.bodies.at(-1).stream_options, { include_obfuscation: false, include_usage: true });
  const sent = await records("copies");
  assert.deepEqual(
    sent.map((r) => [r.provider, r.status, r.inputTokens, r.outputTokens]),
    [
      ["openai", "success", 1200, 300],
      ["anthropic", "success", 2650, 400],
      ["openai", "success", 1200, 300],
    ],
  );
});

test("a stream the caller did not ask usage of has no usage chunk for their loop; asked, it still ends with it", async (t) => {
  const { fake, openai, records } = await setup(t);
  const opsmeter = { endpointTag: "stream.usage" };
  // the loop written for an unwrapped stream: every chunk has a choice
  const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, opsmeter });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0].delta.content ?? "";
  assert.equal(text.trim(), REPLY);
  assert.deepEqual(fake.bodies.at(-1).stream_options, { include_usage: true });
  const stream_options = { include_obfuscation: false }; // the caller's options without include_usage: the same
  const own = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, stream_options, opsmeter });
  for await (const chunk of own) assert.ok(chunk.choices.length > 0 && !("usage" in chunk));
  const helper = openai.chat.completions.stream({ model: "gpt-4o-mini", messages, opsmeter });
  assert.equal((await helper.finalChatCompletion()).usage, undefined); // as unwrapped

  const asked = { include_usage: true };
  const chunks = [];
  const withUsage = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, stream_options: asked, opsmeter });
  for await (const chunk of withUsage) chunks.push(chunk);
  assert.deepEqual([chunks.at(-1).choices, chunks.at(-1).usage.prompt_tokens], [[], 1200]);
  const askedHelper = openai.chat.completions.stream({ model: "gpt-4o-mini", messages, stream_options: asked, opsmeter });
  assert.equal((await askedHelper.finalChatCompletion()).usage.completion_tokens, 300);

  const sent = await records("stream.usage");
  assert.deepEqual(
    sent.map((r) => [r.status, r.inputTokens, r.outputTokens, r.metadata?.opsmeterUsage]),
    Array(5).fill(["success", 1200, 300, undefined]),
  );
});

test("a wrapped stream split with tee() is recorded once, and each half gets the chunks of the unwrapped stream", async (t) => {
  const { fake, openai, anthropic, records } = await setup(t);
  const plain = await new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0 }).chat.completions.create({
    model: "gpt-4o-mini",
    messages,
    stream: true,
  });
  const opsmeter = { endpointTag: "tee.openai" };
  const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, opsmeter });
  assert.equal(stream.constructor, plain.constructor, "the caller gets a Stream of the client's own class");
  const [left, right] = stream.tee();
  const halves = [[], []];
  for await (const chunk of left) halves[0].push(chunk);
  for await (const chunk of right) halves[1].push(chunk);
  const unwrapped = [];
  for await (const chunk of plain) unwrapped.push(chunk);
  assert.deepEqual(halves, [unwrapped, unwrapped]); // the usage-only chunk the SDK asked for is in neither half
  const { data } = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, opsmeter }).withResponse();
  const reader = data.toReadableStream().getReader();
  while (!(await reader.read()).done);
  assert.deepEqual(
    (await records("tee.openai")).map((r) => [r.status, r.inputTokens, r.outputTokens, r.metadata?.opsmeterUsage]),
    Array(2).fill(["success", 1200, 300, undefined]),
  );

  const events = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 512, messages, stream: true, opsmeter: { endpointTag: "tee.anthropic" } });
  const [first, second] = events.tee();
  let text = "";
  for await (const event of first) if (event.type === "content_block_delta") text += event.delta.text;
  for await (const _ of second);
  assert.equal(text.trim(), REPLY);
  const [record, ...more] = await records("tee.anthropic");
  assert.deepEqual(more, []);
  assert.deepEqual([record.status, record.inputTokens, record.outputTokens], ["success", 2650, 400]);
});

test("a call read only through .asResponse() is recorded once, with the usage its body carried, JSON or stream", async (t) => {
  const { openai, anthropic, records } = await setup(t);
  const opsmeter = { endpointTag: "raw.response" };
  const response = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, opsmeter }).asResponse();
  assert.equal((await response.json()).choices[0].message.content, REPLY, "the body is still the caller's to read");
  const streamed = await openai.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, opsmeter }).asResponse();
  assert.match(await streamed.text(), /data: \[DONE\]/);
  const message = await anthropic.messages
    .create({ model: "claude-sonnet-4-5", max_tokens: 512, messages, opsmeter })
    .asResponse();
  assert.equal((await message.json()).usage.output_tokens, 400);
  assert.deepEqual(
    (await records("raw.response")).map((r) => [r.provider, r.status, r.inputTokens, r.outputTokens, r.metadata?.opsmeterUsage]),
    [
      ["openai", "success", 1200, 300, undefined],
      ["openai", "success", 1200, 300, undefined],
      ["anthropic", "success", 2650, 400, undefined],
    ],
  );
});

const RESPONSES_MODEL = "gpt-4.1-mini";
/** What a record says: [status, errorCode, model, input, output, cached, reasoning, opsmeterUsage, opsmeterIncomplete]. */
const responseRow = (r) => [
  r.status,
  r.errorCode,
  r.model,
  r.inputTokens,
  r.outputTokens,
  r.cachedInputTokens,
  r.reasoningTokens,
  r.metadata?.opsmeterUsage,
  r.metadata?.opsmeterIncomplete,
];
/** A Responses call that got RESPONSES_USAGE: input includes the cached tokens, output the reasoning. */
const RESPONSE_RECORDED = ["success", undefined, RESPONSES_MODEL, 900, 250, 512, 64, undefined, undefined];

test("the Responses API is recorded once per call with its usage, and the caller gets what the unwrapped client gets", async (t) => {
  const { fake, openai, records } = await setup(t);
  const plain = new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0 });
  const model = RESPONSES_MODEL;
  const opsmeter = { endpointTag: "responses" };
  const created = await openai.responses.create({ model, input: "When does the order ship?", opsmeter });
  assert.equal(created.output_text, REPLY);
  const format = { type: "json_schema", name: "shipping", strict: true, schema: { type: "object", properties: { day: { type: "string" } } } };
  const parsed = await openai.responses.parse({ model, input: "When?", text: { format }, opsmeter });
  assert.deepEqual(parsed.output_parsed, { day: "Monday" });

  const unwrapped = await plain.responses.create({ model, input: "Hi", stream: true });
  const expected = [];
  for await (const event of unwrapped) expected.push(event);
  const stream = await openai.responses.create({ model, input: "Hi", stream: true, opsmeter });
  assert.equal(stream.constructor, unwrapped.constructor);
  assert.equal(stream._request_id, unwrapped._request_id);
  const streamed = [];
  for await (const event of stream) streamed.push(event);
  assert.deepEqual(streamed, expected);
  assert.equal(expected.at(-1).type, "response.completed");

  const helper = openai.responses.stream({ model, input: "Hi", opsmeter });
  let text = "";
  for await (const event of helper) if (event.type === "response.output_text.delta") text += event.delta;
  assert.equal(text.trim(), REPLY);
  assert.equal((await helper.finalResponse()).usage.output_tokens, 250);
  const beta = await openai.beta.responses.create({ model, input: "Hi", opsmeter });
  assert.equal(beta.usage.input_tokens, 900);
  assert.deepEqual((await records("responses")).map(responseRow), Array(5).fill(RESPONSE_RECORDED));
});

test("a Responses stream left before its usage is recorded once, marked usage missing, and its request is closed", async (t) => {
  const { fake, openai, records } = await setup(t);
  const opsmeter = { endpointTag: "responses.left" };
  fake.next = "hold";
  const stream = await openai.responses.create({ model: RESPONSES_MODEL, input: "Hi", stream: true, opsmeter });
  for await (const event of stream) if (event.type === "response.created") break;
  assert.ok(await until(() => fake.streams.at(-1).closedEarly), "the provider's stream is closed when the caller leaves");
  fake.next = "hold";
  const helper = openai.responses.stream({ model: RESPONSES_MODEL, input: "Hi", opsmeter });
  for await (const event of helper) if (event.type === "response.in_progress") break;
  assert.ok(await until(() => fake.streams.at(-1).closedEarly));
  const missing = ["success", undefined, RESPONSES_MODEL, 0, 0, undefined, undefined, "missing", undefined];
  assert.deepEqual((await records("responses.left")).map(responseRow), [missing, missing]);
});

test("with clamp applied, a Responses call is sent the cap as max_output_tokens", async (t) => {
  const { fake, om, openai, records } = await setup(t, {
    policy: () => exceeded({ onBudgetExceeded: "clamp", clampMaxTokens: 64 }),
  });
  await om.policy.ready();
  const opsmeter = { endpointTag: "responses.clamp" };
  await openai.responses.create({ model: RESPONSES_MODEL, input: "Hi", max_output_tokens: 4096, opsmeter });
  await openai.responses.stream({ model: RESPONSES_MODEL, input: "Hi", opsmeter }).finalResponse();
  assert.deepEqual(
    fake.bodies.map((b) => [b.max_output_tokens, "max_completion_tokens" in b, "max_tokens" in b]),
    [
      [64, false, false],
      [64, false, false],
    ],
  );
  const sent = await records("responses.clamp");
  assert.deepEqual(
    sent.map((r) => [r.status, r.outputTokens, r.metadata?.opsmeterAction]),
    [
      ["success", 250, "clamp"],
      ["success", 250, "clamp"],
    ],
  );
});

test("a Responses call that failed is an error with the response's code; an incomplete one counts and says why", async (t) => {
  const { fake, openai, records } = await setup(t);
  const plain = new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0 });
  const model = RESPONSES_MODEL;
  const opsmeter = { endpointTag: "responses.ended" };
  const types = async (stream) => {
    const seen = [];
    for await (const event of stream) seen.push(event.type);
    return seen;
  };
  fake.next = "failed";
  const expected = await types(await plain.responses.create({ model, input: "Hi", stream: true }));
  fake.next = "failed";
  assert.deepEqual(await types(await openai.responses.create({ model, input: "Hi", stream: true, opsmeter })), expected);
  assert.equal(expected.at(-1), "response.failed");
  fake.next = "failed";
  assert.equal((await openai.responses.create({ model, input: "Hi", opsmeter })).status, "failed");
  fake.next = "incomplete";
  const incomplete = await types(await openai.responses.create({ model, input: "Hi", stream: true, opsmeter }));
  assert.equal(incomplete.at(-1), "response.incomplete");
  fake.next = "incomplete";
  assert.equal((await openai.responses.create({ model, input: "Hi", opsmeter })).status, "incomplete");
  fake.next = "fail"; // an error event mid-stream, which the client passes on
  assert.equal((await types(await openai.responses.create({ model, input: "Hi", stream: true, opsmeter }))).at(-1), "error");

  const failed = ["error", "server_error", model, 0, 0, undefined, undefined, "missing", undefined];
  const cut = ["success", undefined, model, 900, 250, 512, 64, undefined, "max_output_tokens"];
  assert.deepEqual((await records("responses.ended")).map(responseRow), [failed, failed, cut, cut, failed]);
});

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("a background Responses call is recorded once, when a wrapped retrieve() sees it end, with that response's usage", async (t) => {
  const { fake, om, openai, records } = await setup(t);
  const plain = new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0 });
  const other = om.wrapOpenAI(new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0 }));
  const model = RESPONSES_MODEL;
  const opsmeter = { endpointTag: "background" };
  const queued = await openai.responses.create({ model, input: "Research the market.", background: true, opsmeter });
  assert.deepEqual([queued.status, queued.usage, queued.background], ["queued", null, true]);
  assert.equal((await openai.responses.retrieve(queued.id)).status, "in_progress");
  assert.deepEqual(await records("background"), [], "nothing is recorded while it runs");
  await pause(60);
  const done = await other.responses.retrieve(queued.id); // any client wrapped with the same Opsmeter ends it
  assert.deepEqual([done.status, done.output_text], ["completed", REPLY]);
  assert.deepEqual(await openai.responses.retrieve(queued.id), await plain.responses.retrieve(queued.id), "the caller gets what it would");
  const [record, ...more] = await records("background");
  assert.deepEqual(more, [], "recorded once, however often it is retrieved");
  assert.deepEqual(responseRow(record), RESPONSE_RECORDED);
  assert.equal(record.metadata?.opsmeterBackground, undefined);
  assert.ok(record.latencyMs >= 60, `latency runs from the create to the end seen: ${record.latencyMs}`);

  // beta.responses the same; background with stream: true stays a stream, recorded when it ends
  fake.plan = ["completed"];
  const beta = await openai.beta.responses.create({ model, input: "Hi", background: true, opsmeter: { endpointTag: "background.more" } });
  assert.equal((await openai.beta.responses.retrieve(beta.id)).status, "completed");
  const streamed = await openai.responses.create({ model, input: "Hi", background: true, stream: true, opsmeter: { endpointTag: "background.more" } });
  for await (const _ of streamed);
  assert.deepEqual((await records("background.more")).map(responseRow), [RESPONSE_RECORDED, RESPONSE_RECORDED]);
  assert.equal(om.backgroundCalls.size, 0);
});

test("a background Responses call that ends failed is an error with its code; one that ends incomplete counts", async (t) => {
  const { fake, openai, records } = await setup(t);
  const model = RESPONSES_MODEL;
  const opsmeter = { endpointTag: "background.ended" };
  fake.plan = ["in_progress", "failed"];
  const failing = await openai.responses.create({ model, input: "Hi", background: true, opsmeter });
  fake.plan = ["incomplete"];
  const cut = await openai.responses.create({ model, input: "Hi", background: true, opsmeter });
  assert.equal((await openai.responses.retrieve(failing.id)).status, "in_progress");
  assert.equal((await openai.responses.retrieve(cut.id)).status, "incomplete");
  const failed = await openai.responses.retrieve(failing.id);
  assert.deepEqual([failed.status, failed.error.code], ["failed", "server_error"]);
  assert.deepEqual((await records("background.ended")).map(responseRow), [
    ["success", undefined, model, 900, 250, 512, 64, undefined, "max_output_tokens"],
    ["error", "server_error", model, 0, 0, undefined, undefined, "missing", undefined],
  ]);
});

test("a background Responses call cancelled is recorded once as an error `cancelled`, with the usage it carries", async (t) => {
  const { openai, records } = await setup(t);
  const model = RESPONSES_MODEL;
  const opsmeter = { endpointTag: "background.cancelled" };
  const queued = await openai.responses.create({ model, input: "Hi", background: true, opsmeter });
  const cancelled = await openai.responses.cancel(queued.id);
  assert.deepEqual([cancelled.id, cancelled.status], [queued.id, "cancelled"]);
  assert.equal((await openai.responses.retrieve(queued.id)).status, "cancelled");
  assert.deepEqual((await records("background.cancelled")).map(responseRow), [["error", "cancelled", model, 900, 40, 0, 40, undefined, undefined]]);
});

test("a background Responses call never seen to end is recorded at shutdown, without tokens, marked unfinished", async (t) => {
  const { om, openai, sent } = await setup(t);
  const opsmeter = { endpointTag: "background.left", userId: "u_1" };
  const queued = await openai.responses.create({ model: RESPONSES_MODEL, input: "Hi", background: true, opsmeter });
  assert.equal((await openai.responses.retrieve(queued.id)).status, "in_progress");
  await pause(50);
  assert.deepEqual(sent, [], "nothing before the shutdown");
  await om.shutdown(3000);
  assert.deepEqual(
    sent.map((r) => [r.endpointTag, r.userId, r.model, r.status, r.inputTokens, r.outputTokens, r.metadata]),
    [["background.left", "u_1", RESPONSES_MODEL, "success", 0, 0, { opsmeterUsage: "missing", opsmeterBackground: "unfinished" }]],
  );
  assert.equal(om.backgroundCalls.size, 0);
});

test("an Opsmeter client holds at most 1,024 background calls: past that the oldest is recorded as unfinished", () => {
  const om = new Opsmeter("", {});
  const ended = [];
  const held = (id) => ({ finished: () => ended.push(`${id} finished`), unfinished: () => ended.push(`${id} unfinished`) });
  for (let i = 0; i < 1026; i += 1) om.backgroundCalls.hold(`resp_${i}`, held(i));
  assert.deepEqual(ended, ["0 unfinished", "1 unfinished"]);
  assert.equal(om.backgroundCalls.size, 1024);
  om.backgroundCalls.seen({ id: "resp_1", status: "completed" }, Date.now()); // pushed out: already recorded
  om.backgroundCalls.seen({ id: "resp_5", status: "in_progress" }, Date.now()); // still running
  om.backgroundCalls.seen({ id: "resp_2", status: "completed" }, Date.now());
  om.backgroundCalls.seen({ id: "resp_2", status: "completed" }, Date.now());
  assert.deepEqual(ended.slice(2), ["2 finished"]);
  om.backgroundCalls.close();
  assert.equal(ended.length, 3 + 1023);
  assert.ok(ended.slice(3).every((end) => end.endsWith(" unfinished")));
});

test("a retrieve() or cancel() of a response this client did not hold records nothing", async (t) => {
  const { fake, om, openai, sent } = await setup(t);
  const plain = new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0 });
  const elsewhere = await plain.responses.create({ model: RESPONSES_MODEL, input: "Hi", background: true });
  fake.plan = ["completed"];
  const other = await plain.responses.create({ model: RESPONSES_MODEL, input: "Hi", background: true });
  assert.equal((await openai.responses.retrieve(elsewhere.id)).status, "in_progress");
  assert.equal((await openai.responses.retrieve(elsewhere.id)).status, "completed");
  assert.equal((await openai.responses.retrieve(other.id)).usage.output_tokens, 250);
  assert.equal((await openai.beta.responses.cancel(other.id)).status, "cancelled");
  await assert.rejects(openai.responses.retrieve("resp_unknown"), OpenAI.NotFoundError);
  await assert.rejects(openai.responses.cancel("resp_unknown"), OpenAI.NotFoundError);
  await pause(50);
  assert.ok(await om.flush(3000));
  assert.deepEqual(sent, []);
});

test("Anthropic's beta.messages are recorded once per call as messages are: create, streams, stream(), parse()", async (t) => {
  const { fake, anthropic, records } = await setup(t);
  const plain = new Anthropic({ apiKey: "sk-ant", baseURL: fake.url, maxRetries: 0 });
  const params = { model: "claude-sonnet-4-5", max_tokens: 512, messages };
  const opsmeter = { endpointTag: "beta.anthropic" };
  const message = await anthropic.beta.messages.create({ ...params, opsmeter });
  assert.equal(message.content[0].text, REPLY);
  const expected = [];
  for await (const event of await plain.beta.messages.create({ ...params, stream: true })) expected.push(event);
  const events = [];
  for await (const event of await anthropic.beta.messages.create({ ...params, stream: true, opsmeter })) events.push(event);
  assert.deepEqual(events, expected, "the caller gets the events of the unwrapped client");
  assert.equal((await anthropic.beta.messages.stream({ ...params, opsmeter }).finalMessage()).usage.output_tokens, 400);
  assert.equal((await anthropic.beta.messages.parse({ ...params, opsmeter })).content[0].text, REPLY);
  fake.next = "fail";
  await assert.rejects(async () => {
    for await (const _ of await anthropic.beta.messages.create({ ...params, stream: true, opsmeter }));
  }, Anthropic.APIError);
  fake.next = "hold";
  const left = await anthropic.beta.messages.create({ ...params, stream: true, opsmeter });
  for await (const event of left) if (event.type === "message_start") break;
  assert.ok(await until(() => fake.streams.at(-1).closedEarly), "the provider's stream is closed when the caller leaves");
  assert.ok(fake.bodies.every((body) => !("opsmeter" in body)));
  const done = ["anthropic", "claude-sonnet-4-5", "success", undefined, 2650, 400, 2000, 500];
  assert.deepEqual(
    (await records("beta.anthropic")).map((r) => [r.provider, r.model, r.status, r.errorCode, r.inputTokens, r.outputTokens, r.cachedInputTokens, r.cacheWriteInputTokens]),
    [
      done,
      done,
      done,
      done,
      ["anthropic", "claude-sonnet-4-5", "error", "overloaded_error", 2650, 1, 2000, 500],
      ["anthropic", "claude-sonnet-4-5", "success", undefined, 2650, 1, 2000, 500],
    ],
  );
});

const TOP_LEVEL = { input_tokens: 23000, output_tokens: 1000, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
const COMPACTED = {
  ...TOP_LEVEL,
  iterations: [
    { type: "compaction", input_tokens: 180000, output_tokens: 3500, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
    { type: "message", ...TOP_LEVEL }, // already in the top-level fields
  ],
};

for (const [name, usage, recorded] of [
  ["a compaction iteration's tokens are added to", COMPACTED, [203000, 4500]],
  ["a usage without iterations is recorded as it is in", TOP_LEVEL, [23000, 1000]],
]) {
  test(`${name} an Anthropic beta.messages record: create, stream: true, stream()`, async (t) => {
    // server-side compaction bills its summary step on the requested model but leaves it out of the top-level usage
    const { fake, anthropic, records } = await setup(t);
    fake.anthropicUsage = usage;
    const params = { model: "claude-sonnet-4-5", max_tokens: 512, messages, betas: ["compact-2026-01-12"] };
    const opsmeter = { endpointTag: "beta.compaction" };
    await anthropic.beta.messages.create({ ...params, opsmeter });
    for await (const _ of await anthropic.beta.messages.create({ ...params, stream: true, opsmeter }));
    await anthropic.beta.messages.stream({ ...params, opsmeter }).finalMessage();
    assert.deepEqual(
      (await records("beta.compaction")).map((r) => [r.provider, r.status, r.inputTokens, r.outputTokens]),
      Array(3).fill(["anthropic", "success", ...recorded]),
    );
  });
}

test("a parse() read only through .asResponse() is recorded once, as a create() is, and the caller gets the response", async (t) => {
  const { openai, records } = await setup(t);
  const opsmeter = { endpointTag: "parse.raw" };
  const completion = await openai.chat.completions.parse({ model: "gpt-4o-mini", messages, opsmeter }).asResponse();
  assert.equal(completion.status, 200);
  assert.equal((await completion.json()).choices[0].message.content, REPLY, "the body is still the caller's to read");
  const format = { type: "json_schema", name: "shipping", strict: true, schema: { type: "object", properties: { day: { type: "string" } } } };
  const request = { model: RESPONSES_MODEL, input: "When?", text: { format }, opsmeter };
  const response = await openai.responses.parse(request).asResponse();
  assert.equal((await response.json()).output[0].content[0].text, '{"day":"Monday"}');
  const { data, response: raw } = await openai.responses.parse(request).withResponse(); // parsed: recorded there, once
  assert.deepEqual([data.output_parsed, raw.status], [{ day: "Monday" }, 200]);
  assert.deepEqual(
    (await records("parse.raw")).map((r) => [r.model, r.status, r.inputTokens, r.outputTokens, r.cachedInputTokens, r.metadata?.opsmeterUsage]),
    [
      ["gpt-4o-mini", "success", 1200, 300, 1024, undefined],
      [RESPONSES_MODEL, "success", 900, 250, 512, undefined],
      [RESPONSES_MODEL, "success", 900, 250, 512, undefined],
    ],
  );
});

test("a call the client retries is recorded once, as it ended; the given client's fetch and create() still work", async (t) => {
  const { fake, om, records } = await setup(t);
  let fetched = 0;
  const own = (url, init) => (fetched++, fetch(url, init));
  const given = new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 1, fetch: own });
  const openai = om.wrapOpenAI(given);
  assert.equal(om.wrapOpenAI(given), openai, "wrapped once");
  const opsmeter = { endpointTag: "retried" };
  fake.next = "500";
  await openai.chat.completions.create({ model: "gpt-4o-mini", messages, opsmeter });
  await given.chat.completions.create({ model: "gpt-4o-mini", messages, opsmeter }); // the call shape of 0.1.0
  assert.equal(fetched, 3, "the given client's own fetch sends every attempt");
  const anthropic = om.wrapAnthropic(new Anthropic({ apiKey: "sk-ant", baseURL: fake.url, maxRetries: 1 }));
  const params = { model: "claude-sonnet-4-5", max_tokens: 64, messages, opsmeter };
  fake.next = "500";
  await anthropic.messages.create(params);
  fake.next = "500";
  await assert.rejects(anthropic.withOptions({ maxRetries: 0 }).messages.create(params), Anthropic.InternalServerError);
  assert.deepEqual(
    (await records("retried")).map((r) => [r.provider, r.status, r.errorCode, r.inputTokens]),
    [
      ["openai", "success", undefined, 1200],
      ["openai", "success", undefined, 1200],
      ["anthropic", "success", undefined, 2650],
      ["anthropic", "error", "http_500", 0],
    ],
  );
});

test("an Anthropic call queued waits before it is sent, from the first call on; a queue that times out rejects", async (t) => {
  let state = exceeded({ onBudgetExceeded: "queue", queueMaxWaitSeconds: 5 });
  const { fake, om, anthropic, records } = await setup(t, { policy: () => state, policyRefreshIntervalMs: 200 });
  await om.policy.ready();
  const params = { model: "claude-sonnet-4-5", max_tokens: 64, messages, opsmeter: { endpointTag: "queued.anthropic" } };
  const started = Date.now();
  setTimeout(() => (state = { policyMode: "enforce", budgetExceeded: false }), 400);
  assert.equal((await anthropic.messages.create(params)).usage.output_tokens, 400);
  assert.ok(Date.now() - started >= 350, "the call did not wait");
  state = exceeded({ onBudgetExceeded: "queue", queueMaxWaitSeconds: 0.3 });
  await om.policy.refresh();
  await assert.rejects(anthropic.messages.create(params), (error) => error instanceof BudgetExceededError && error.action === "queue");
  assert.equal(fake.bodies.length, 1);
  assert.deepEqual(
    (await records("queued.anthropic")).map((r) => [r.status, r.errorCode, r.metadata?.opsmeterAction]),
    [
      ["success", undefined, "queue"],
      ["error", "budget_blocked", "queue"],
    ],
  );
});
