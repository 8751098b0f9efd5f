"""Re-pricing stored calls (ADR 57): the diff a dry run shows is exactly what applying it moves.

Each stored call is priced again, by the workspace's own prices and the installed catalog, at its own time; a
call whose computed cost changes gets a ``telemetry.cost_corrected`` event with the delta. Budgets and reports
count the delta only when the call was counted at its computed cost (the workspace's cost basis when stored).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from redis.asyncio import Redis

from opsmeter_contracts import Topics, encode_event
from opsmeter_contracts.pricing import CostCorrected, CostCorrectedPayload, RepricingApplied, RepricingAppliedPayload
from opsmeter_pricing import PriceCatalog, Usage
from opsmeter_pricing.workspace import WorkspacePrices, quote_for
from opsmeter_reporting.domain import StoredCall, UsageWindow
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.errors import OpsmeterError, Unavailable
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.projections import WorkspacePricesProjection
from opsmeter_runtime.redis import workspace_tag

DataMode = Literal["real", "test", "demo"]
CORRECTION_NAMESPACE = uuid.UUID("0b8f6a56-3d3a-4d43-9a0f-5b1f7d2c9e57")


@dataclass(frozen=True)
class Repriced:
    call: StoredCall
    new_cost_micro_usd: int
    price_row: str | None

    @property
    def computed_delta_micro_usd(self) -> int:
        return self.new_cost_micro_usd - self.call.computed_cost_micro_usd

    @property
    def delta_micro_usd(self) -> int:
        """What budgets and reports move by: the computed delta when the call was counted at its computed cost."""
        basis, reported = self.call.cost_basis, self.call.had_reported_cost
        counted = basis == "computed" or (basis == "reported_when_present" and not reported)
        return self.computed_delta_micro_usd if counted else 0


@dataclass(frozen=True)
class ModelDiff:
    model: str
    provider: str
    requests: int
    repriced: int
    old_cost_micro_usd: int
    new_cost_micro_usd: int
    computed_delta_micro_usd: int
    delta_micro_usd: int


def reprice(calls: Sequence[StoredCall], catalog: PriceCatalog, prices: WorkspacePrices | None) -> list[Repriced]:
    """Every call priced again at its own time: workspace prices first, then the catalog."""
    out: list[Repriced] = []
    for call in calls:
        usage = Usage(
            call.input_tokens,
            call.output_tokens,
            cache_read=call.cached_input_tokens,
            cache_write=call.cache_write_input_tokens,
            reasoning=call.reasoning_tokens,
            cache_write_1h=call.cache_write_1h_input_tokens,
        )
        quote = quote_for(catalog.tariff(call.provider, call.model), prices, call.provider, call.model,
                          call.occurred_at, usage)  # fmt: skip
        out.append(Repriced(call, quote.cost_micro_usd, quote.price_row))
    return out


def diff_by_model(repriced: Sequence[Repriced]) -> list[ModelDiff]:
    """Per model and provider: the calls, those whose cost changes, old and new computed cost, and the deltas."""
    groups: dict[tuple[str, str], list[Repriced]] = {}
    for r in repriced:
        groups.setdefault((r.call.model_normalized, r.call.provider), []).append(r)
    diffs = [
        ModelDiff(
            model=model,
            provider=provider,
            requests=len(items),
            repriced=sum(1 for r in items if r.computed_delta_micro_usd),
            old_cost_micro_usd=sum(r.call.computed_cost_micro_usd for r in items),
            new_cost_micro_usd=sum(r.new_cost_micro_usd for r in items),
            computed_delta_micro_usd=sum(r.computed_delta_micro_usd for r in items),
            delta_micro_usd=sum(r.delta_micro_usd for r in items),
        )
        for (model, provider), items in groups.items()
    ]
    return sorted(diffs, key=lambda d: (-abs(d.computed_delta_micro_usd), d.model, d.provider))


def corrections(
    workspace_id: str,
    repricing_id: str,
    repriced: Sequence[Repriced],
    *,
    data_mode: DataMode,
    catalog_version: str,
    requested_by: str,
    now: datetime,
) -> list[CostCorrected]:
    """One correction per call whose computed cost changes; its id is derived, so publishing it again is a no-op."""
    out = []
    for r in repriced:
        if not r.computed_delta_micro_usd:
            continue
        c = r.call
        payload = CostCorrectedPayload(
            corrected_event_id=c.event_id,
            repricing_id=repricing_id,
            provider=c.provider,
            model_normalized=c.model_normalized,
            endpoint_tag=c.endpoint_tag,
            user_id=c.user_id,
            prompt_version=c.prompt_version,
            data_mode=data_mode,
            had_reported_cost=c.had_reported_cost,
            computed_delta_micro_usd=r.computed_delta_micro_usd,
            delta_micro_usd=r.delta_micro_usd,
            new_cost_micro_usd=r.new_cost_micro_usd,
            price_catalog_version=catalog_version,
            price_row=r.price_row,
            requested_by=requested_by,
        )
        out.append(
            CostCorrected(
                event_id=uuid.uuid5(CORRECTION_NAMESPACE, f"{repricing_id}:{c.event_id}"),
                occurred_at=c.occurred_at,
                ingested_at=now,
                workspace_id=workspace_id,
                payload=payload,
            )
        )
    return out


class RepricingStore(Protocol):
    async def stored_calls(
        self, workspace_id: str, window: UsageWindow, data_mode: str, models: Sequence[str]
    ) -> list[StoredCall]: ...

    async def append_corrections(self, events: Sequence[CostCorrected]) -> None: ...

    async def save_repricing(
        self, workspace_id: str, applied_at: datetime, record: RepricingAppliedPayload
    ) -> None: ...


class RepricingBusy(OpsmeterError):
    status_code = 409
    reason = "conflict"


@dataclass(frozen=True)
class RepricingResult:
    repricing_id: str | None
    diffs: list[ModelDiff]
    corrected_events: int
    catalog_version: str
    workspace_prices_version: int


async def run_repricing(
    principal: Principal,
    window: UsageWindow,
    *,
    data_mode: DataMode,
    models: Sequence[str],
    dry_run: bool,
    reason: str,
    store: RepricingStore,
    publisher: EventPublisher,
    redis: Redis,
    catalog: PriceCatalog,
) -> RepricingResult:
    """Dry run: the diff. Applied (one at a time per workspace): the corrections published, stored and audited."""
    ws = principal.workspace_id
    own = await WorkspacePricesProjection(redis).get(ws)
    prices = WorkspacePrices.of(own.version, own.prices) if own else None
    version = own.version if own else 0
    if dry_run:
        repriced = reprice(await store.stored_calls(ws, window, data_mode, models), catalog, prices)
        return RepricingResult(None, diff_by_model(repriced), 0, catalog.version, version)
    lock, token = f"opsmeter:reporting:repricing:{workspace_tag(ws)}", uuid.uuid4().hex
    if not await redis.set(lock, token, nx=True, ex=300):
        raise RepricingBusy("another re-pricing of this workspace is running; try again when it is done")
    try:
        repriced = reprice(await store.stored_calls(ws, window, data_mode, models), catalog, prices)
        now = datetime.now(UTC)
        repricing_id = f"rp_{uuid.uuid4().hex[:20]}"
        fixes = corrections(
            ws,
            repricing_id,
            repriced,
            data_mode=data_mode,
            catalog_version=catalog.version,
            requested_by=principal.credential_id,
            now=now,
        )
        records = [(Topics.TELEMETRY.value, e.key, encode_event(e)) for e in fixes]
        for start in range(0, len(records), 500):
            if not all(await publisher.publish_many(records[start : start + 500])):
                raise Unavailable("the corrections could not all be published; nothing is audited, run it again")
        await store.append_corrections(fixes)
        audit = RepricingAppliedPayload(
            repricing_id=repricing_id,
            range_from=window.start,
            range_to=window.end,
            data_mode=data_mode,
            models=tuple(models),
            corrected_events=len(fixes),
            delta_micro_usd=sum(e.payload.delta_micro_usd for e in fixes),
            price_catalog_version=catalog.version,
            workspace_prices_version=version,
            requested_by=principal.credential_id,
            requested_by_role="owner" if principal.role == "owner" else "admin",
            reason=reason,
        )
        await publisher.publish(Topics.WORKSPACES, RepricingApplied.new(ws, audit, at=now))
        await store.save_repricing(ws, now, audit)
        return RepricingResult(repricing_id, diff_by_model(repriced), len(fixes), catalog.version, version)
    finally:
        if await redis.get(lock) in (token, token.encode()):
            await redis.delete(lock)
