"""A workspace's own prices (ADR 57): read by any role, replaced by the owner or an admin."""

from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from opsmeter_contracts.pricing import WorkspacePriceRow, WorkspacePricesSetPayload
from opsmeter_ingest.api.answers import WorkspacePricesAnswer
from opsmeter_ingest.api.deps import Deps, WorkspaceReader, WorkspaceWriter
from opsmeter_ingest.commands import set_workspace_prices
from opsmeter_runtime.http import json_response
from opsmeter_runtime.money import MICRO, format_micro_usd

router = APIRouter(prefix="/v1/workspaces/{workspace_id}/prices", tags=["pricing"])

UsdPerMtok = Annotated[Decimal, Field(ge=0, le=Decimal("1000000"), max_digits=13, decimal_places=6)]
"""USD per 1M tokens, to the micro-dollar."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class WorkspacePriceBody(_Body):
    model: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f\s][^\x00-\x1f\x7f]*$")
    """A model name as clients send it, or a pattern with ``*`` (``acme-llama-*``); case-insensitive."""
    provider: str | None = Field(default=None, min_length=1, max_length=64)
    effective_from: date | AwareDatetime = Field(
        description="From this date (00:00 UTC) or instant on, this price wins over the catalog."
    )
    input_usd_per_mtok: UsdPerMtok
    output_usd_per_mtok: UsdPerMtok
    cached_input_usd_per_mtok: UsdPerMtok | None = None
    cache_write_input_usd_per_mtok: UsdPerMtok | None = None
    reasoning_usd_per_mtok: UsdPerMtok | None = None

    def row(self) -> WorkspacePriceRow:
        start = self.effective_from
        if not isinstance(start, datetime):
            start = datetime.combine(start, time(), tzinfo=UTC)
        return WorkspacePriceRow(
            model=self.model,
            provider=self.provider,
            effective_from=start.astimezone(UTC),
            input_micro_usd_per_mtok=_micro(self.input_usd_per_mtok),
            output_micro_usd_per_mtok=_micro(self.output_usd_per_mtok),
            cached_input_micro_usd_per_mtok=_opt_micro(self.cached_input_usd_per_mtok),
            cache_write_input_micro_usd_per_mtok=_opt_micro(self.cache_write_input_usd_per_mtok),
            reasoning_micro_usd_per_mtok=_opt_micro(self.reasoning_usd_per_mtok),
        )


class WorkspacePricesBody(_Body):
    prices: list[WorkspacePriceBody] = Field(max_length=200)
    reason: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _one_row_per_model_and_date(self) -> "WorkspacePricesBody":
        keys = [(p.model.lower(), (p.provider or "").lower(), p.row().effective_from) for p in self.prices]
        if len(keys) != len(set(keys)):
            raise ValueError("each model (and provider) may have one price per effective date")
        return self


def _micro(usd: Decimal) -> int:
    return int((usd * MICRO).to_integral_value(rounding=ROUND_HALF_UP))


def _opt_micro(usd: Decimal | None) -> int | None:
    return None if usd is None else _micro(usd)


def _usd(micro: int | None) -> str | None:
    return None if micro is None else format_micro_usd(micro)


def prices_view(workspace_id: str, payload: WorkspacePricesSetPayload | None) -> dict[str, Any]:
    rows = payload.prices if payload else ()
    return {
        "workspaceId": workspace_id,
        "version": payload.version if payload else 0,
        "reason": payload.reason if payload else "",
        "prices": [
            {
                "model": r.model,
                "provider": r.provider,
                "effectiveFrom": r.effective_from.isoformat().replace("+00:00", "Z"),
                "inputUsdPerMtok": format_micro_usd(r.input_micro_usd_per_mtok),
                "outputUsdPerMtok": format_micro_usd(r.output_micro_usd_per_mtok),
                "cachedInputUsdPerMtok": _usd(r.cached_input_micro_usd_per_mtok),
                "cacheWriteInputUsdPerMtok": _usd(r.cache_write_input_micro_usd_per_mtok),
                "reasoningUsdPerMtok": _usd(r.reasoning_micro_usd_per_mtok),
            }
            for r in rows
        ],
    }


@router.get("", response_model=WorkspacePricesAnswer)
async def get_prices(reader: WorkspaceReader, deps: Deps) -> Response:
    return json_response(prices_view(reader.workspace_id, await deps.workspace_prices.get(reader.workspace_id)))


@router.put("", response_model=WorkspacePricesAnswer)
async def put_prices(body: WorkspacePricesBody, admin: WorkspaceWriter, deps: Deps) -> Response:
    """Replace the workspace's own prices; events already stored keep their cost until re-priced."""
    payload = await set_workspace_prices(
        admin,
        [p.row() for p in body.prices],
        body.reason,
        publisher=deps.resources.publisher,
        projection=deps.workspace_prices,
        prices=deps.prices,
    )
    view = prices_view(admin.workspace_id, payload)
    if payload.prices:
        earliest = min(row.effective_from for row in payload.prices)
        view["repricingFrom"] = earliest.isoformat().replace("+00:00", "Z")
    return json_response(view)
