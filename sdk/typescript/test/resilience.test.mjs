// The client's promises under bad input and a changing workspace: nothing lost silently, pauses that lift, a
// policy that does not keep enforcement closed when Opsmeter is gone. Runs on its own (npm test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Opsmeter } from "../dist/index.js";

const json = (body, status = 200) => Response.json(body, { status });
const accepted = (init) => {
  const { events } = JSON.parse(init.body);
  return { events, answer: json({ results: events.map(() => ({ httpStatus: 202 })) }, 207) };
};
const one = (extra = {}) => ({ provider: "openai", model: "gpt-4o-mini", inputTokens: 10, outputTokens: 2, ...extra });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("a record that cannot be encoded is dropped and counted, and the records after it are still sent", async () => {
  const sent = [];
  const gateway = async (_url, init) => {
    const { events, answer } = accepted(init);
    sent.push(...events);
    return answer;
  };
  const om = new Opsmeter("om_live_x_y", { baseUrl: "http://gateway.test", fetch: gateway, flushIntervalMs: 10 });
  const cycle = {};
  cycle.self = cycle;
  assert.equal(om.record(one({ metadata: { big: 10n } })), null);
  assert.equal(om.record(one({ metadata: cycle })), null);
  const ids = [om.record(one()), om.record(one({ metadata: { order: "A-1" } }))];
  assert.ok(await om.flush(3000), JSON.stringify(om.stats()));
  assert.deepEqual(
    sent.map((r) => r.externalRequestId),
    ids,
  );
  const stats = om.stats();
  assert.deepEqual([stats.recorded, stats.accepted, stats.dropped], [4, 2, { unencodable: 2 }]);
  await om.shutdown(1000);
});

test("a plan-limit pause lifts by itself once the workspace status says so, with nothing queued", async () => {
  let limited = true;
  let statusChecks = 0;
  const sent = [];
  const gateway = async (url, init) => {
    if (String(url).endsWith("/v1/diagnostics/workspace-status")) {
      statusChecks += 1;
      return json({ telemetryPaused: limited, isPlanLimitReached: limited });
    }
    if (limited) return json({ status: "rejected", reason: "plan_limit_reached", telemetryPaused: true }, 402);
    const { events, answer } = accepted(init);
    sent.push(...events);
    return answer;
  };
  const om = new Opsmeter("om_live_x_y", {
    baseUrl: "http://gateway.test",
    fetch: gateway,
    flushIntervalMs: 10,
    statusCheckIntervalMs: 50,
  });
  om.record(one());
  assert.ok(await om.flush(3000));
  assert.equal(om.flags.telemetryPaused, true);
  assert.equal(om.record(one()), null); // paused: dropped, counted
  limited = false; // the plan was upgraded
  const deadline = Date.now() + 3000;
  while (om.flags.telemetryPaused && Date.now() < deadline) await sleep(20);
  assert.equal(om.flags.telemetryPaused, false, `the pause did not lift (${statusChecks} status checks)`);
  const id = om.record(one());
  assert.ok(id);
  assert.ok(await om.flush(3000));
  assert.deepEqual(
    sent.map((r) => r.externalRequestId),
    [id],
  );
  assert.deepEqual(om.stats().dropped, { plan_limit_reached: 2 });
  await om.shutdown(1000);
});

/** A client with enforcement on, its policy answers given by `policy()` (null: unreachable). */
function enforced(policy, refreshMs = 50) {
  const gateway = async (url) => {
    if (!String(url).endsWith("/v1/runtime/policy")) return json({ results: [] }, 207);
    const body = policy();
    if (body === null) throw new TypeError("fetch failed");
    return json(body);
  };
  return new Opsmeter("om_live_x_y", {
    baseUrl: "http://gateway.test",
    fetch: gateway,
    enforcement: true,
    policyRefreshIntervalMs: refreshMs,
  });
}

const blocked = (periodEnd) => ({
  policyMode: "enforce",
  budgetExceeded: true,
  exceededWindows: [{ window: "day", periodEnd }],
  runtimeActions: { onBudgetExceeded: "block" },
});
const params = { model: "gpt-4o", max_tokens: 100 };

test("an exceeded budget no longer blocks once its windows have ended, with no newer answer", async () => {
  const om = enforced(() => blocked(new Date(Date.now() + 200).toISOString()), 60_000);
  await om.policy.refresh();
  assert.equal(om.policy.decide("openai", params, "max_tokens")?.action, "block");
  await sleep(300); // the window ends; Opsmeter is not asked again (a long refresh interval)
  assert.equal(om.policy.decide("openai", params, "max_tokens"), null);
  await om.shutdown(100);
});

test("with Opsmeter unreachable for three refresh intervals, enforcement fails open; it closes again on an answer", async () => {
  let reachable = true;
  const om = enforced(() => (reachable ? blocked(new Date(Date.now() + 60_000).toISOString()) : null));
  await om.policy.refresh();
  assert.equal(om.policy.decide("openai", params, "max_tokens")?.action, "block");
  reachable = false;
  const deadline = Date.now() + 3000;
  while (om.policy.decide("openai", params, "max_tokens") !== null && Date.now() < deadline) {
    await om.policy.refresh(); // tried, and failed
    await sleep(20);
  }
  assert.equal(om.policy.decide("openai", params, "max_tokens"), null, "the stale snapshot still blocks");
  reachable = true;
  await om.policy.refresh();
  assert.equal(om.policy.decide("openai", params, "max_tokens")?.action, "block");
  await om.shutdown(100);
});

test("an unreachable policy is fetched once at a time and not again on every call", async () => {
  let fetches = 0;
  const om = enforced(() => {
    fetches += 1;
    return null;
  }, 60_000);
  for (let n = 0; n < 50; n += 1) {
    om.policy.maybeRefresh();
    assert.equal(om.policy.decide("openai", params, "max_tokens"), null);
  }
  await om.policy.refresh();
  assert.equal(fetches, 1);
  await om.shutdown(100);
});
