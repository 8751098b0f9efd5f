// Verbatim from shared/seeds/product-notes.txt (the product notes' JavaScript client).
async function sendTelemetry(payload, apiKey) {
if (!apiKey) return;
try {
const res = await fetch('https://api.opsmeter.io/v1/ingest/llm-request', {
method: 'POST',
headers: { 'Content-Type': 'application/json', 'X-API-Key': apiKey },
body: JSON.stringify(payload)
});
if (res.status === 429) {
const retryAfter = Number(res.headers.get('Retry-After') ?? '1');
console.warn(`Telemetry throttled, retry after ${retryAfter}s`);
return;
}
if (res.status === 402) {
console.warn('Telemetry paused due to plan/budget policy.');
return;
}
} catch {
// telemetry must not break your production flow
}
}
