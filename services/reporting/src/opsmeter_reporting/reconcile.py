"""Reconciliation with the provider's bill (ADR 57): per UTC day and model, what Opsmeter computed, what clients
reported, what the provider billed, the gap, and its likely reason. Pure: parsing and comparing, no I/O.

The provider reports are read exactly as documented:

* OpenAI ``GET /v1/organization/costs`` (https://platform.openai.com/docs/api-reference/usage/costs): a page of
  daily ``bucket``s (``start_time``/``end_time`` in Unix seconds), each with ``organization.costs.result``s
  whose ``amount`` is ``{"value": <number>, "currency": "usd"}``; the model is read from ``line_item`` (with
  ``group_by=line_item``, e.g. ``"gpt-4o-mini-2024-07-18, input"``); a result without one is unattributed.
* Anthropic ``GET /v1/organizations/cost_report`` (https://platform.claude.com/docs/en/api/admin/cost_report):
  ``data`` of daily buckets (``starting_at``/``ending_at``, RFC 3339), each with ``results`` whose ``amount`` is a
  decimal string in the currency's lowest unit (cents: ``"123.45"`` is $1.2345), and, with
  ``group_by[]=description``, ``model``, ``cost_type``, ``token_type`` and ``context_window``.
* CSV (a spreadsheet export): a header row with ``date`` (YYYY-MM-DD), ``model`` and ``cost_usd``.
"""

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

Provider = Literal["openai", "anthropic"]
Reason = Literal["records_missing", "unpriced_model", "cache_tokens_missing", "tier", "unexplained", "matches"]
UNATTRIBUTED = "(unattributed)"
TOLERANCE_MICRO_USD = 10_000
"""A gap of at most $0.01 (or 1% of the bill, whichever is more) matches: provider rounding."""


class ReportInvalid(ValueError):
    """A cost report that is not shaped as its provider documents it; the message names where."""


@dataclass(frozen=True)
class BilledLine:
    day: date
    model: str
    amount_micro_usd: int
    cache_tokens: bool = False
    """The line bills cache reads or writes (Anthropic ``token_type``)."""
    long_context: bool = False
    """The line bills the long-context window (Anthropic ``context_window`` ``200k-1M``)."""


@dataclass(frozen=True)
class StoredDay:
    """What Opsmeter stored for one day and model of the provider."""

    day: date
    model: str
    requests: int
    computed_micro_usd: int
    reported_micro_usd: int
    unpriced_requests: int
    cache_tokens: int
    tiered_requests: int


@dataclass(frozen=True)
class ReconciledDay:
    day: date
    model: str
    requests: int
    computed_micro_usd: int
    reported_micro_usd: int
    billed_micro_usd: int
    reason: Reason
    explanation: str

    @property
    def gap_micro_usd(self) -> int:
        """Billed minus computed: what Opsmeter would miss if the bill is right."""
        return self.billed_micro_usd - self.computed_micro_usd


@dataclass
class _Billed:
    amount: int = 0
    cache_tokens: bool = False
    long_context: bool = False
    lines: list[BilledLine] = field(default_factory=list)


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, float):  # a JSON number already parsed: its shortest repr is the decimal that was sent
        value = repr(value)
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ReportInvalid(f"{where} must be a number or a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ReportInvalid(f"{where} is not a decimal number: {value!r}") from None
    if not number.is_finite():
        raise ReportInvalid(f"{where} is not finite")
    return number


def _micro(usd: Decimal) -> int:
    return int((usd * 1_000_000).to_integral_value(rounding=ROUND_HALF_UP))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportInvalid(f"{where} must be an object")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ReportInvalid(f"{where} must be an array")
    return value


def loads(text: str | bytes) -> Any:
    """JSON with every number kept exact (a bill's floats are decimals)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ReportInvalid(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def openai_costs(document: Any, normalize: Callable[[str], str]) -> list[BilledLine]:
    """Billed lines of an OpenAI organization costs page (see the module docstring)."""
    page = _object(document, "body")
    if page.get("object") != "page":
        raise ReportInvalid('object must be "page" (an OpenAI organization costs response)')
    lines = []
    for i, raw_bucket in enumerate(_array(page.get("data"), "data")):
        bucket = _object(raw_bucket, f"data[{i}]")
        start = bucket.get("start_time")
        if not isinstance(start, int) or isinstance(start, bool):
            raise ReportInvalid(f"data[{i}].start_time must be Unix seconds")
        day = datetime.fromtimestamp(start, UTC).date()
        for j, raw in enumerate(_array(bucket.get("results"), f"data[{i}].results")):
            where = f"data[{i}].results[{j}]"
            result = _object(raw, where)
            amount = _object(result.get("amount"), f"{where}.amount")
            if str(amount.get("currency", "usd")).lower() != "usd":
                raise ReportInvalid(f"{where}.amount.currency must be usd")
            value = _decimal(amount.get("value"), f"{where}.amount.value")
            line_item = result.get("line_item")
            model = normalize(str(line_item).split(",", 1)[0].strip()) if line_item else UNATTRIBUTED
            lines.append(BilledLine(day, model, _micro(value)))
    return lines


def anthropic_cost_report(document: Any, normalize: Callable[[str], str]) -> list[BilledLine]:
    """Billed lines of an Anthropic cost report (amounts in cents; see the module docstring)."""
    report = _object(document, "body")
    lines = []
    for i, raw_bucket in enumerate(_array(report.get("data"), "data")):
        bucket = _object(raw_bucket, f"data[{i}]")
        try:
            day = datetime.fromisoformat(str(bucket.get("starting_at")).replace("Z", "+00:00")).astimezone(UTC).date()
        except ValueError:
            raise ReportInvalid(f"data[{i}].starting_at must be an RFC 3339 time") from None
        for j, raw in enumerate(_array(bucket.get("results"), f"data[{i}].results")):
            where = f"data[{i}].results[{j}]"
            result = _object(raw, where)
            if str(result.get("currency", "USD")).upper() != "USD":
                raise ReportInvalid(f"{where}.currency must be USD")
            cents = _decimal(result.get("amount"), f"{where}.amount")
            model = result.get("model")
            token_type = str(result.get("token_type") or "")
            lines.append(
                BilledLine(
                    day,
                    normalize(str(model)) if model else UNATTRIBUTED,
                    _micro(cents / 100),
                    cache_tokens=token_type.startswith("cache_"),
                    long_context=result.get("context_window") == "200k-1M",
                )
            )
    return lines


def csv_costs(text: str, normalize: Callable[[str], str]) -> list[BilledLine]:
    """Billed lines of a CSV export with ``date``, ``model`` and ``cost_usd`` columns."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"date", "model", "cost_usd"} - set(reader.fieldnames or ())
    if missing:
        raise ReportInvalid(f"the CSV header lacks {', '.join(sorted(missing))}")
    lines = []
    for n, row in enumerate(reader, start=2):
        try:
            day = date.fromisoformat(row["date"].strip())
        except ValueError:
            raise ReportInvalid(f"line {n}: date must be YYYY-MM-DD") from None
        model = row["model"].strip()
        amount = _decimal(row["cost_usd"].strip(), f"line {n}: cost_usd")
        lines.append(BilledLine(day, normalize(model) if model else UNATTRIBUTED, _micro(amount)))
    return lines


def billed_window(lines: Sequence[BilledLine]) -> tuple[datetime, datetime]:
    """The whole UTC days the bill covers, half-open."""
    if not lines:
        raise ReportInvalid("the report has no cost buckets")
    first, last = min(line.day for line in lines), max(line.day for line in lines)
    start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    return start, datetime.combine(last, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)


def reconcile(billed: Iterable[BilledLine], stored: Sequence[StoredDay]) -> list[ReconciledDay]:
    """Every day and model either side has, with the gap and the likeliest reason for it."""
    bills: dict[tuple[date, str], _Billed] = {}
    for line in billed:
        entry = bills.setdefault((line.day, line.model), _Billed())
        entry.amount += line.amount_micro_usd
        entry.cache_tokens |= line.cache_tokens and line.amount_micro_usd > 0
        entry.long_context |= line.long_context and line.amount_micro_usd > 0
        entry.lines.append(line)
    ours: Mapping[tuple[date, str], StoredDay] = {(s.day, s.model): s for s in stored}
    days = sorted({*bills, *ours})
    out = []
    for key in days:
        bill = bills.get(key, _Billed())
        mine = ours.get(key)
        reason, why = _reason(bill, mine)
        out.append(
            ReconciledDay(
                day=key[0],
                model=key[1],
                requests=mine.requests if mine else 0,
                computed_micro_usd=mine.computed_micro_usd if mine else 0,
                reported_micro_usd=mine.reported_micro_usd if mine else 0,
                billed_micro_usd=bill.amount,
                reason=reason,
                explanation=why,
            )
        )
    return out


def _reason(bill: _Billed, mine: StoredDay | None) -> tuple[Reason, str]:
    computed = mine.computed_micro_usd if mine else 0
    gap = bill.amount - computed
    if abs(gap) <= max(TOLERANCE_MICRO_USD, bill.amount // 100):
        return "matches", "within $0.01 or 1% of the bill"
    if mine is None or mine.requests == 0:
        if bill.amount > 0:
            return "records_missing", "the provider billed this day and model but Opsmeter has no calls for it"
        return "unexplained", "Opsmeter counted calls the provider did not bill"
    if mine.unpriced_requests:
        return "unpriced_model", f"{mine.unpriced_requests} of {mine.requests} calls had no price (cost 0)"
    if bill.cache_tokens and mine.cache_tokens == 0 and gap > 0:
        return "cache_tokens_missing", "the bill has cache reads or writes; the calls sent no cache token counts"
    if bill.long_context and mine.tiered_requests == 0 and gap > 0:
        return "tier", "the bill has long-context (200k-1M) tokens; no call was priced at a long-context tier"
    if gap > 0 and mine.requests and gap * 10 >= bill.amount:
        return "records_missing", "the bill is well above the calls Opsmeter has: some calls were not sent"
    return "unexplained", "the gap has no reason Opsmeter can tell"


async def fetch_report(provider: Provider, admin_key: str, base_url: str, start: datetime, end: datetime) -> Any:
    """The provider's cost report for ``[start, end)``, every page, fetched with the organization's admin key (used
    for this request only, never stored or logged); shaped as one documented response."""
    import httpx

    base = base_url.rstrip("/")
    buckets: list[Any] = []
    page: str | None = None
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(100):
            if provider == "openai":
                params: dict[str, Any] = {
                    "start_time": int(start.timestamp()),
                    "end_time": int(end.timestamp()),
                    "bucket_width": "1d",
                    "group_by": "line_item",
                    "limit": 180,
                }
                headers = {"Authorization": f"Bearer {admin_key}"}
                url = f"{base}/v1/organization/costs"
            else:
                params = {
                    "starting_at": start.isoformat().replace("+00:00", "Z"),
                    "ending_at": end.isoformat().replace("+00:00", "Z"),
                    "bucket_width": "1d",
                    "group_by[]": "description",
                }
                headers = {"x-api-key": admin_key, "anthropic-version": "2023-06-01"}
                url = f"{base}/v1/organizations/cost_report"
            if page:
                params["page"] = page
            answer = await client.get(url, params=params, headers=headers)
            if answer.status_code != 200:
                raise ReportFetchFailed(f"{provider} answered {answer.status_code} for its cost report")
            body = _object(loads(answer.content), "body")
            buckets += _array(body.get("data"), "data")
            page = body.get("next_page") if body.get("has_more") else None
            if not page:
                break
    if provider == "openai":
        return {"object": "page", "data": buckets, "has_more": False, "next_page": None}
    return {"data": buckets, "has_more": False, "next_page": None}


class ReportFetchFailed(Exception):
    """The provider did not give its cost report (a wrong admin key, the provider away)."""
