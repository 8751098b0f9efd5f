"""Redis projections shared across services: one writer each, read by the gateway on every ingest.

- ``opsmeter:plan:{<ws>}`` — the workspace's plan and limits; written by billing.
- ``opsmeter:policy:status:{<ws>}`` — budget flags, enforcement and kill switch; written by the policy engine.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

import orjson
from redis.asyncio import Redis

from opsmeter_contracts.pricing import WorkspacePricesSetPayload
from opsmeter_runtime.money import CostBasis, parse_cost_basis
from opsmeter_runtime.redis import decode_hash, run_script_many, workspace_tag

PlanTier = Literal["free", "starter", "pro", "team", "enterprise"]
StoppedScope = tuple[str, str]
"""A scoped budget's (dimension, value): ``("endpoint_tag", "checkout.ai_summary")``, ``("model", "gpt-4o")``."""
Enforcement = Literal["advisory", "hard_stop"]

PLAN_ORDER: tuple[PlanTier, ...] = ("free", "starter", "pro", "team", "enterprise")


def plan_at_least(plan: PlanTier, required: PlanTier) -> bool:
    """Whether ``plan`` includes what ``required`` gates (SPEC §4: each plan has everything below it)."""
    return PLAN_ORDER.index(plan) >= PLAN_ORDER.index(required)


def plan_key(workspace_id: str) -> str:
    return f"opsmeter:plan:{workspace_tag(workspace_id)}"


def policy_status_key(workspace_id: str) -> str:
    return f"opsmeter:policy:status:{workspace_tag(workspace_id)}"


@dataclass(frozen=True)
class PlanRecord:
    plan: PlanTier
    rate_limit_per_minute: int | None
    """None: the gateway's default (billing always projects one; the default covers a record without it)."""
    monthly_request_quota: int | None
    """None: unlimited."""


class PlanProjection:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def save(self, workspace_id: str, record: PlanRecord) -> None:
        await self._redis.hset(
            plan_key(workspace_id),
            mapping={
                "plan": record.plan,
                "rate_limit_per_minute": _opt(record.rate_limit_per_minute),
                "monthly_request_quota": _opt(record.monthly_request_quota),
            },
        )

    async def get(self, workspace_id: str) -> PlanRecord | None:
        record = decode_hash(await self._redis.hgetall(plan_key(workspace_id)))
        if not record:
            return None
        return PlanRecord(
            plan=cast(PlanTier, record["plan"]),
            rate_limit_per_minute=_int_or_none(record.get("rate_limit_per_minute", "")),
            monthly_request_quota=_int_or_none(record.get("monthly_request_quota", "")),
        )


@dataclass(frozen=True)
class BudgetWindowStatus:
    """One workspace-level budget window (UTC day or month, half-open) as of the policy engine's last evaluation."""

    limit_micro_usd: int
    spend_micro_usd: int
    warning_at_micro_usd: int
    period_start: datetime
    period_end: datetime
    projected_end_of_period_micro_usd: int | None = None
    projected_exhaust_at: datetime | None = None

    @property
    def utilization_ratio(self) -> float:
        return self.spend_micro_usd / self.limit_micro_usd if self.limit_micro_usd else 1.0

    @property
    def is_warning(self) -> bool:
        return self.spend_micro_usd >= self.warning_at_micro_usd

    @property
    def is_exceeded(self) -> bool:
        return self.spend_micro_usd >= self.limit_micro_usd


@dataclass(frozen=True)
class PolicyStatus:
    """What the gateway needs to answer an ingest: flags, mode and whether to block.

    The fields after ``kill_switch`` are details for diagnostics and for reserve-then-settle (ADR 10):
    ``*_headroom_micro_usd`` is how much more spend, beyond what the engine has settled, raises the flag
    (None: no budget), so a caller that adds the spend it admitted but the engine has not settled yet
    (``opsmeter:policy:pending:{<ws>}``, field ``total``) can tell the flags after its own event.
    """

    budget_warning: bool = False
    budget_exceeded: bool = False
    enforcement: Enforcement = "advisory"
    kill_switch: bool = False
    settings_version: int = 0
    warning_threshold_ratio: float = 0.8
    warning_headroom_micro_usd: int | None = None
    exceeded_headroom_micro_usd: int | None = None
    daily: BudgetWindowStatus | None = None
    monthly: BudgetWindowStatus | None = None
    evaluated_at: datetime | None = None
    cost_basis: CostBasis = "computed"
    """Which cost budgets and reports use (ADR 57): the computed one, the client's reported one, or reported when
    present; reporting's sink reads it here."""
    workspace_exceeded: bool | None = None
    """A workspace budget (not a scoped one) is exceeded; None: a status written before scoped stops, where any
    exceeded budget stopped the workspace."""
    stopped_scopes: tuple[StoppedScope, ...] = ()
    """The scoped budgets exceeded: (dimension, value), ``("user_id", "u_42")``. Under hard-stop only the events of
    such a scope are refused (ADR 10)."""

    @property
    def policy_mode(self) -> Literal["enforce", "observe"]:
        return "observe" if self.kill_switch else "enforce"

    @property
    def enforcing(self) -> bool:
        """Hard-stop, and the kill switch is not putting policy in observe mode."""
        return self.enforcement == "hard_stop" and not self.kill_switch

    @property
    def blocks_ingest(self) -> bool:
        """Hard-stop answers 402 to every event once a workspace budget is exceeded (observe mode aside)."""
        exceeded = self.budget_exceeded if self.workspace_exceeded is None else self.workspace_exceeded
        return self.enforcing and exceeded

    def stops(self, endpoint_tag: str, model_normalized: str, user_id: str) -> bool:
        """Whether hard-stop refuses a real event with these attributes: a workspace budget, or a scoped budget of
        its endpoint, model or user, is exceeded."""
        return self.blocks_ingest or self.stopping_scope(endpoint_tag, model_normalized, user_id) is not None

    def stopping_scope(self, endpoint_tag: str, model_normalized: str, user_id: str) -> StoppedScope | None:
        """The exceeded scoped budget that hard-stop refuses such an event for, if any (first by dimension)."""
        if not self.enforcing or not self.stopped_scopes:
            return None
        for scope in (("endpoint_tag", endpoint_tag), ("model", model_normalized), ("user_id", user_id)):
            if scope in self.stopped_scopes:
                return scope
        return None


def policy_pending_key(workspace_id: str) -> str:
    """Spend admitted by the gateway and not yet settled by the policy engine: event id → micro-USD, ``total``."""
    return f"opsmeter:policy:pending:{workspace_tag(workspace_id)}"


_SAVE_POLICY_STATUS = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'settings_version') or '0')
if stored > tonumber(ARGV[1]) then return 0 end
local fields = tonumber(ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + fields))
for i = 3 + fields, #ARGV do
  local cost = redis.call('HGET', KEYS[2], ARGV[i])
  if cost then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HINCRBY', KEYS[2], 'total', -tonumber(cost))
  end
end
return 1
"""


class PolicyStatusProjection:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._save = redis.register_script(_SAVE_POLICY_STATUS)

    async def save(self, workspace_id: str, status: PolicyStatus, settled_event_ids: Sequence[str] = ()) -> bool:
        """Replace the status unless a newer settings version is stored; settle the events it now counts.

        False when a newer settings version was already projected (the caller re-evaluates).
        """
        return (await self.save_many([(workspace_id, status, settled_event_ids)]))[0]

    async def save_many(self, items: Sequence[tuple[str, PolicyStatus, Sequence[str]]]) -> list[bool]:
        """``save`` for several workspaces in one round trip."""
        calls = []
        for workspace_id, status, settled in items:
            flat = [item for pair in _policy_status_fields(status).items() for item in pair]
            calls.append(
                (
                    [policy_status_key(workspace_id), policy_pending_key(workspace_id)],
                    [status.settings_version, len(flat), *flat, *settled],
                )
            )
        return [bool(saved) for saved in await run_script_many(self._redis, self._save, calls)]

    async def get(self, workspace_id: str) -> PolicyStatus:
        return policy_status_from_hash(decode_hash(await self._redis.hgetall(policy_status_key(workspace_id))))


def _policy_status_fields(status: PolicyStatus) -> dict[str, str | int | float]:
    fields: dict[str, str | int | float] = {
        "budget_warning": int(status.budget_warning),
        "budget_exceeded": int(status.budget_exceeded),
        "enforcement": status.enforcement,
        "kill_switch": int(status.kill_switch),
        "settings_version": status.settings_version,
        "warning_threshold_ratio": status.warning_threshold_ratio,
        "warning_headroom_micro_usd": _opt(status.warning_headroom_micro_usd),
        "exceeded_headroom_micro_usd": _opt(status.exceeded_headroom_micro_usd),
        "evaluated_at": status.evaluated_at.isoformat() if status.evaluated_at else "",
        "cost_basis": status.cost_basis,
        "workspace_exceeded": int(
            status.budget_exceeded if status.workspace_exceeded is None else status.workspace_exceeded
        ),
        "stopped_scopes": orjson.dumps([[d, v] for d, v in status.stopped_scopes]).decode(),
    }
    for name, window in (("daily", status.daily), ("monthly", status.monthly)):
        if window is not None:
            fields |= {
                f"{name}_limit_micro_usd": window.limit_micro_usd,
                f"{name}_spend_micro_usd": window.spend_micro_usd,
                f"{name}_warning_at_micro_usd": window.warning_at_micro_usd,
                f"{name}_period_start": window.period_start.isoformat(),
                f"{name}_period_end": window.period_end.isoformat(),
                f"{name}_projected_end_micro_usd": _opt(window.projected_end_of_period_micro_usd),
                f"{name}_projected_exhaust_at": window.projected_exhaust_at.isoformat()
                if window.projected_exhaust_at
                else "",
            }
    return fields


def _window_from_hash(record: dict[str, str], name: str) -> BudgetWindowStatus | None:
    if not record.get(f"{name}_limit_micro_usd"):
        return None
    exhaust = record.get(f"{name}_projected_exhaust_at", "")
    return BudgetWindowStatus(
        limit_micro_usd=int(record[f"{name}_limit_micro_usd"]),
        spend_micro_usd=int(record[f"{name}_spend_micro_usd"]),
        warning_at_micro_usd=int(record[f"{name}_warning_at_micro_usd"]),
        period_start=datetime.fromisoformat(record[f"{name}_period_start"]),
        period_end=datetime.fromisoformat(record[f"{name}_period_end"]),
        projected_end_of_period_micro_usd=_int_or_none(record.get(f"{name}_projected_end_micro_usd", "")),
        projected_exhaust_at=datetime.fromisoformat(exhaust) if exhaust else None,
    )


def policy_status_from_hash(record: dict[str, str]) -> PolicyStatus:
    """The status a hash describes; a missing hash means defaults (advisory, no flags)."""
    evaluated_at = record.get("evaluated_at", "")
    return PolicyStatus(
        budget_warning=record.get("budget_warning") == "1",
        budget_exceeded=record.get("budget_exceeded") == "1",
        enforcement="hard_stop" if record.get("enforcement") == "hard_stop" else "advisory",
        kill_switch=record.get("kill_switch") == "1",
        settings_version=int(record.get("settings_version") or 0),
        warning_threshold_ratio=float(record.get("warning_threshold_ratio") or 0.8),
        warning_headroom_micro_usd=_int_or_none(record.get("warning_headroom_micro_usd", "")),
        exceeded_headroom_micro_usd=_int_or_none(record.get("exceeded_headroom_micro_usd", "")),
        daily=_window_from_hash(record, "daily"),
        monthly=_window_from_hash(record, "monthly"),
        evaluated_at=datetime.fromisoformat(evaluated_at) if evaluated_at else None,
        cost_basis=parse_cost_basis(record.get("cost_basis", "")),
        workspace_exceeded=record["workspace_exceeded"] == "1" if "workspace_exceeded" in record else None,
        stopped_scopes=_scopes(record.get("stopped_scopes", "")),
    )


def _scopes(text: str) -> tuple[StoppedScope, ...]:
    """``stopped_scopes``: a JSON array of [dimension, value] pairs."""
    try:
        found = orjson.loads(text) if text else []
    except orjson.JSONDecodeError:
        return ()
    if not isinstance(found, list):
        return ()
    return tuple((str(p[0]), str(p[1])) for p in found if isinstance(p, list) and len(p) == 2)


def _opt(value: int | None) -> str | int:
    return "" if value is None else value


def _int_or_none(text: str) -> int | None:
    return int(text) if text else None


WORKSPACE_PRICES_KEY = "opsmeter:{pricing}:workspace-prices"
"""Hash: workspace id → its ``WorkspacePricesSetPayload`` JSON (the gateway writes it, ADR 57)."""
WORKSPACE_PRICES_CHANGES_KEY = "opsmeter:{pricing}:workspace-prices:changes"
"""A counter bumped by every change, so a reader reloads the hash only when something changed. Both keys share
the hash tag ``{pricing}``: the save script writes them together, on a Redis Cluster too (ADR 59)."""

_SAVE_WORKSPACE_PRICES = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored and cjson.decode(stored)['version'] >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
"""


class WorkspacePricesProjection:
    """Each workspace's own price list, the newest version kept (a replayed older one changes nothing)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._save = redis.register_script(_SAVE_WORKSPACE_PRICES)

    async def save(self, workspace_id: str, prices: WorkspacePricesSetPayload) -> bool:
        keys = [WORKSPACE_PRICES_KEY, WORKSPACE_PRICES_CHANGES_KEY]
        return bool(await self._save(keys=keys, args=[workspace_id, prices.version, prices.model_dump_json()]))

    async def get(self, workspace_id: str) -> WorkspacePricesSetPayload | None:
        stored = await self._redis.hget(WORKSPACE_PRICES_KEY, workspace_id)
        return None if stored is None else WorkspacePricesSetPayload.model_validate_json(stored)

    async def changes(self) -> int:
        return int(await self._redis.get(WORKSPACE_PRICES_CHANGES_KEY) or 0)

    async def all(self) -> dict[str, WorkspacePricesSetPayload]:
        stored = await self._redis.hgetall(WORKSPACE_PRICES_KEY)
        return {
            (k.decode() if isinstance(k, bytes) else k): WorkspacePricesSetPayload.model_validate_json(v)
            for k, v in stored.items()
        }
