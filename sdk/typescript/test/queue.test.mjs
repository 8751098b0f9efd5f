// The bounded record queue (SPEC §12): a stalled gateway never blocks record(); a full queue drops the oldest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { Opsmeter } from "../dist/index.js";

const MAX_QUEUE = 50;
const one = (n) => ({ provider: "openai", model: "gpt-4o-mini", inputTokens: 812, outputTokens: 164, latencyMs: n });

// A local ingest endpoint that takes every batch but answers none until release(); then 207, all accepted.
async function stalledGateway() {
  const batches = []; // the externalRequestIds of each POST, in arrival order
  const held = [];
  const waiting = [];
  let released = false;
  const answer = (res, count) => {
    res.writeHead(207, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ results: Array.from({ length: count }, () => ({ httpStatus: 202 })) }));
  };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const { events } = JSON.parse(body);
      batches.push(events.map((event) => event.externalRequestId));
      for (const wake of waiting.splice(0)) wake();
      if (released) answer(res, events.length);
      else held.push(() => answer(res, events.length));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const gateway = {
    url: `http://127.0.0.1:${server.address().port}`,
    batches,
    async waitForBatches(count, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (batches.length < count) {
        assert.ok(Date.now() < deadline, `${batches.length} of ${count} batches within ${timeoutMs} ms`);
        await new Promise((resolve) => {
          waiting.push(resolve);
          setTimeout(resolve, 50);
        });
      }
    },
    release() {
      released = true;
      for (const reply of held.splice(0)) reply();
    },
    async close() {
      gateway.release();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return gateway;
}

test("a stalled gateway never blocks record() and a full queue drops the oldest records", async (t) => {
  const gateway = await stalledGateway();
  // flushAt == the queue size and a long interval: the sender starts exactly when the 50th record is queued
  const om = new Opsmeter("om_live_x_y", {
    baseUrl: gateway.url,
    maxQueueSize: MAX_QUEUE,
    flushAt: MAX_QUEUE,
    flushIntervalMs: 60_000,
    timeoutMs: 10_000,
  });
  t.after(async () => {
    await om.shutdown(1000);
    await gateway.close();
  });
  const inFlight = Array.from({ length: MAX_QUEUE }, (_, n) => om.record(one(n)));
  await gateway.waitForBatches(1); // the sender now holds one batch of 50 the gateway does not answer
  assert.deepEqual(gateway.batches, [inFlight]);
  const ids = [];
  let slowest = 0;
  for (let n = 0; n < 5 * MAX_QUEUE; n++) {
    const started = performance.now();
    ids.push(om.record(one(n)));
    slowest = Math.max(slowest, performance.now() - started);
    assert.equal(om.stats().queueDepth, Math.min(n + 1, MAX_QUEUE));
    await new Promise((resolve) => setImmediate(resolve)); // let the sender run: it stays stuck on the gateway
  }
  assert.ok(slowest < 100, `a record() call took ${slowest} ms`);
  assert.ok(!ids.includes(null)); // each new record is queued; an older one makes room
  let stats = om.stats();
  assert.equal(stats.recorded, 6 * MAX_QUEUE);
  // 300 recorded; 50 in flight and 50 queued are kept; the rest were dropped, oldest first
  assert.deepEqual(stats.dropped, { queue_full: 6 * MAX_QUEUE - MAX_QUEUE - MAX_QUEUE }, JSON.stringify(stats));
  assert.equal(stats.accepted, 0);

  gateway.release();
  assert.ok(await om.flush(3000), JSON.stringify(om.stats()));
  assert.deepEqual(gateway.batches, [inFlight, ids.slice(-MAX_QUEUE)]); // the newest 50 were kept
  stats = om.stats();
  assert.deepEqual([stats.accepted, stats.queueDepth, stats.dropped], [2 * MAX_QUEUE, 0, { queue_full: 200 }]);
});
