"""Realistic demo telemetry: several providers, models, features, users and prompt versions, one spike.

Pure: the caller prices the records and publishes them with ``dataMode=demo``.
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opsmeter_ingest.record import IngestRequest, ValidatedRecord

MODELS = (
    ("openai", "gpt-4o-mini", 0.40, (600, 2500), (80, 400)),
    ("openai", "gpt-4o", 0.15, (900, 4000), (150, 700)),
    ("anthropic", "claude-3-5-haiku-latest", 0.15, (500, 3000), (100, 500)),
    ("anthropic", "claude-sonnet-4-0", 0.10, (1200, 6000), (200, 900)),
    ("google", "gemini-2.0-flash", 0.15, (400, 2000), (60, 300)),
    ("openai", "o3-mini", 0.05, (800, 3000), (400, 2500)),
)
ENDPOINTS = (
    ("checkout.ai_summary", 0.30),
    ("support.reply_draft", 0.25),
    ("search.rerank", 0.20),
    ("onboarding.assistant", 0.15),
    ("reports.narrative", 0.10),
)
SPIKE_ENDPOINT = "support.reply_draft"
SPIKE_MODEL = ("anthropic", "claude-sonnet-4-0")


@dataclass(frozen=True)
class DemoSet:
    records: list[ValidatedRecord]
    spike_day: str
    spike_driver: str


def generate(*, count: int, days: int, now: datetime, seed: int) -> DemoSet:
    """``count`` records over the last ``days`` UTC days; the day before yesterday carries a spike."""
    rng = random.Random(seed)
    spike_day = (now - timedelta(days=2)).date()
    users = [f"u_{rng.getrandbits(32):08x}" for _ in range(60)]
    records: list[ValidatedRecord] = []
    for i in range(count):
        at = now - timedelta(seconds=rng.uniform(60, days * 86400))
        in_spike = at.date() == spike_day and rng.random() < 0.7
        if in_spike:
            provider, model = SPIKE_MODEL
            endpoint, in_range, out_range = SPIKE_ENDPOINT, (5000, 12000), (800, 2000)
        else:
            provider, model, _, in_range, out_range = rng.choices(MODELS, weights=[m[2] for m in MODELS])[0]
            endpoint = rng.choices([e for e, _ in ENDPOINTS], weights=[w for _, w in ENDPOINTS])[0]
        input_tokens, output_tokens = rng.randint(*in_range), rng.randint(*out_range)
        request = IngestRequest.model_validate(
            {
                "externalRequestId": f"demo_{seed:x}_{i}",
                "provider": provider,
                "model": model,
                "endpointTag": endpoint,
                "promptVersion": rng.choice(("v11", "v12", "v12", "v13")),
                "userId": rng.choice(users),
                "inputTokens": input_tokens,
                "outputTokens": output_tokens,
                "latencyMs": rng.randint(200, 9000),
                "status": "error" if rng.random() < 0.02 else "success",
                "dataMode": "demo",
                "environment": "prod",
            }
        )
        records.append(ValidatedRecord(request, at.astimezone(UTC)))
    return DemoSet(records, spike_day.isoformat(), f"{SPIKE_ENDPOINT} on {SPIKE_MODEL[1]}")
