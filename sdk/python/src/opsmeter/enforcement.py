"""Runtime enforcement (opt-in): the workspace's runtime actions applied before a wrapped provider call.

The actions live in the policy engine (``runtimeActions`` of ``/v1/workspaces/{id}/policy``) and reach the
SDK through ``GET /v1/runtime/policy`` (the API key), refreshed at most every ``refresh_interval``. With the
kill switch on (``policyMode: observe``) the SDK only reports what it would have done.

A scoped budget (one endpoint tag, model or user) concerns only the calls of its scope: the action applies to a
call when the workspace's own budget, or a scoped budget matching the call (:class:`CallScope`), says so. A model
budget names the model as the gateway does (its ``modelNormalized``): exact from the first recorded call of a model on,
once its ingest answer has said it (:class:`ModelNames`); by a local rule (:func:`normalize_model`) before that. An
ingest answer's budget flags (any budget) refresh the workspace's state in between when the workspace has no
scoped budget (or the server is older than them); otherwise one that disagrees with the snapshot makes the sender
ask for the policy again early.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from opsmeter.errors import BudgetExceededError

if TYPE_CHECKING:
    from opsmeter.client import Opsmeter

ACTIONS = ("none", "block", "clamp", "fallback", "queue")
STALE_AFTER_INTERVALS = 3
"""A snapshot no answer (policy or ingest) has confirmed for this many refresh intervals, while tried, is not
acted on: enforcement fails open while Opsmeter is unreachable, rather than staying closed for good."""

EARLY_REFRESH_AFTER = 1.0
"""An ingest answer whose budget flags disagree with a snapshot that has scoped budgets asks for the policy again,
at most this often (seconds; or every refresh interval if that is shorter)."""
UNKNOWN = "unknown"
"""The gateway's endpoint tag and user id for a record that gives none."""
MODELS_KEPT = 1024
"""How many models :class:`ModelNames` keeps the gateway's name of (and the name each asked-for model is recorded
with); past that the oldest learned is dropped."""

log = logging.getLogger("opsmeter")

_DATE_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")


def normalize_model(model: str) -> str:
    """A model name as a model-scoped budget names it (the gateway's ``modelNormalized``), as far as the SDK can
    tell without the gateway's price catalog: stripped, lowercased, without a provider path (``openai/gpt-4o`` ->
    ``gpt-4o``) and without a trailing date (``-2024-08-06``, ``-20241022``, ``@20241022``). An alias only the
    catalog knows (``claude-3-5-sonnet-latest``) is not mapped. The rule for a model until an ingest answer has
    said its exact name (:class:`ModelNames`)."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    return _DATE_SUFFIX.sub("", name)


KeyT = TypeVar("KeyT")


def _keep(names: dict[KeyT, str], key: KeyT, value: str) -> None:
    """Set ``key``; a full map first drops its oldest entry (a model still in use is learned again at its next
    answer)."""
    if key not in names and len(names) >= MODELS_KEPT:
        del names[next(iter(names))]
    names[key] = value


class ModelNames:
    """The gateway's name (``modelNormalized``) for each model calls are recorded with, as its ingest answers say
    it: what a model-scoped budget is named by. Learned on the sender thread, read on the callers'."""

    def __init__(self) -> None:
        self._said: dict[tuple[str, str], str] = {}
        """(provider, model) as a record sent them -> the ``modelNormalized`` its answer said."""
        self._recorded_as: dict[tuple[str, str], str] = {}
        """(provider, model asked for) -> the model the provider answered with and the call was recorded with
        (``gpt-4o`` -> ``gpt-4o-2024-08-06``, an alias -> its dated id): that one's name is the call's."""
        self._lock = threading.Lock()

    def _after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at the fork); what was learned stays."""
        self._lock = threading.Lock()

    def said(self, provider: str, model: str, normalized: str) -> None:
        """An ingest answer: the gateway calls the record of ``provider`` / ``model`` (as sent) ``normalized``."""
        with self._lock:
            _keep(self._said, (provider, model), normalized)

    def recorded(self, provider: str, asked: str, model: str) -> None:
        """A call that asked for ``asked`` was answered, and recorded, as ``model``."""
        with self._lock:
            if asked == model:
                self._recorded_as.pop((provider, asked), None)
            else:
                _keep(self._recorded_as, (provider, asked), model)

    def normalized(self, provider: str, model: str) -> str | None:
        """The gateway's name for a call of ``provider`` asking for ``model``; None until an answer has said it."""
        with self._lock:
            recorded = self._recorded_as.get((provider, model))
            said = None if recorded is None else self._said.get((provider, recorded))
            return said if said is not None else self._said.get((provider, model))


@dataclass(frozen=True)
class CallScope:
    """What one call is for, as its record says it: what a scoped budget is matched against."""

    endpoint_tag: str = UNKNOWN
    model: str = ""
    user_id: str = UNKNOWN
    model_normalized: str | None = None
    """The gateway's name for the model (:class:`ModelNames`); None until an ingest answer has said it."""

    @property
    def budget_model(self) -> str:
        """The model as a model-scoped budget names it: the gateway's name once known, else the local rule."""
        return self.model_normalized if self.model_normalized is not None else normalize_model(self.model)

    @classmethod
    def of(cls, endpoint_tag: Any, model: Any, user_id: Any) -> CallScope:
        """From the values the call is recorded with (None or empty: the gateway's ``unknown``)."""
        return cls(
            endpoint_tag=str(endpoint_tag) if endpoint_tag else UNKNOWN,
            model=str(model) if model else "",
            user_id=str(user_id) if user_id else UNKNOWN,
        )


@dataclass(frozen=True)
class BudgetFlags:
    warning: bool = False
    exceeded: bool = False


@dataclass(frozen=True)
class ScopedBudget:
    """One scoped budget in its current window (``scopedBudgets`` of the runtime policy)."""

    dimension: str
    """``endpointTag``, ``model`` or ``userId``."""
    value: str
    window: str
    warning: bool = False
    exceeded: bool = False
    period_end: datetime | None = None

    def concerns(self, call: CallScope) -> bool:
        if self.dimension == "endpointTag":
            return self.value == call.endpoint_tag
        if self.dimension == "userId":
            return self.value == call.user_id
        if self.dimension == "model":
            return self.value == call.budget_model
        return False

    @classmethod
    def from_json(cls, body: Any) -> ScopedBudget | None:
        if not isinstance(body, Mapping):
            return None
        dimension, value = body.get("dimension"), body.get("value")
        if not isinstance(dimension, str) or not isinstance(value, str):
            return None
        return cls(
            dimension=dimension,
            value=value,
            window=str(body.get("window") or ""),
            warning=bool(body.get("warning")),
            exceeded=bool(body.get("exceeded")),
            period_end=_instant(body.get("periodEnd")),
        )


@dataclass(frozen=True)
class BudgetHit:
    """The budget whose state decides a call's action."""

    level: str
    """``exceeded`` or ``warning``."""
    budget: str | None
    """``workspace``, or the scoped budget's dimension; None from a server that does not say which budget."""
    value: str | None = None
    window: str | None = None
    resets_at: datetime | None = None
    """When every exceeded budget that concerns the call has reset (None: not known, or a scoped answer's warning)."""

    def describe(self) -> str:
        if self.budget is None:
            return f"budget {self.level}"
        if self.budget == "workspace":
            return f"budget {self.level} (workspace)"
        return f"budget {self.level} ({self.budget} {self.value}, {self.window})"

    def error(self, message: str, action: str) -> BudgetExceededError:
        return BudgetExceededError(
            message, action=action, window=self.window, budget=self.budget, budget_value=self.value
        )


def _instant(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RuntimeActions:
    on_budget_warning: str = "none"
    on_budget_exceeded: str = "none"
    clamp_max_tokens: int | None = None
    fallback_models: dict[str, str] = field(default_factory=dict)
    queue_max_wait_seconds: float = 30.0

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RuntimeActions:
        def action(name: str) -> str:
            value = body.get(name) or "none"
            return value if value in ACTIONS else "none"

        fallback = body.get("fallbackModels") or {}
        return cls(
            on_budget_warning=action("onBudgetWarning"),
            on_budget_exceeded=action("onBudgetExceeded"),
            clamp_max_tokens=body.get("clampMaxTokens"),
            fallback_models={str(k): str(v) for k, v in fallback.items()} if isinstance(fallback, dict) else {},
            queue_max_wait_seconds=float(body.get("queueMaxWaitSeconds") or 30.0),
        )


@dataclass(frozen=True)
class PolicySnapshot:
    policy_mode: str = "enforce"
    budget_warning: bool = False
    budget_exceeded: bool = False
    resets_at: datetime | None = None
    """When the last exceeded workspace window ends (the budget is available again), if exceeded."""
    actions: RuntimeActions = field(default_factory=RuntimeActions)
    workspace: BudgetFlags | None = None
    """The workspace's own budgets (``workspaceBudget``). None from a server older than scoped budgets: its flags
    (``budget_warning`` / ``budget_exceeded``, any budget) then concern every call."""
    scoped_budgets: tuple[ScopedBudget, ...] = ()
    """Every scoped budget configured, each concerning only the calls of its endpoint tag, model or user."""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PolicySnapshot:
        ends = [
            datetime.fromisoformat(str(w["periodEnd"]).replace("Z", "+00:00"))
            for w in body.get("exceededWindows") or []
            if isinstance(w, dict) and w.get("periodEnd")
        ]
        own = body.get("workspaceBudget")
        scoped = body.get("scopedBudgets")
        return cls(
            policy_mode=str(body.get("policyMode") or "enforce"),
            budget_warning=bool(body.get("budgetWarning")),
            budget_exceeded=bool(body.get("budgetExceeded")),
            resets_at=max(ends) if ends else None,
            actions=RuntimeActions.from_json(body.get("runtimeActions") or {}),
            workspace=(
                BudgetFlags(warning=bool(own.get("warning")), exceeded=bool(own.get("exceeded")))
                if isinstance(own, Mapping)
                else None
            ),
            scoped_budgets=tuple(
                budget
                for budget in (ScopedBudget.from_json(item) for item in (scoped if isinstance(scoped, list) else []))
                if budget is not None
            ),
        )

    @property
    def takes_ingest_flags(self) -> bool:
        """Whether an ingest answer's flags (any budget) can stand for the workspace's: from an older server, or
        when no scoped budget is configured."""
        return self.workspace is None or not self.scoped_budgets

    def with_ingest_flags(self, warning: bool, exceeded: bool) -> PolicySnapshot:
        """This snapshot with a newer ingest answer's budget flags (see :attr:`takes_ingest_flags`)."""
        workspace = None if self.workspace is None else BudgetFlags(warning=warning, exceeded=exceeded)
        return replace(self, budget_warning=warning, budget_exceeded=exceeded, workspace=workspace)

    def lifted(self, answered: datetime, now: datetime) -> PolicySnapshot:
        """Every exceeded budget whose window has ended since the answer that said so counts as available again:
        the workspace's at its exceeded windows' end (``resets_at``), each scoped budget at its own ``periodEnd``."""
        state = self

        def ended(end: datetime | None) -> bool:
            return end is not None and answered < end <= now

        if state.workspace is None:
            if state.budget_exceeded and ended(state.resets_at):
                state = replace(state, budget_exceeded=False)
            return state
        if state.workspace.exceeded and ended(state.resets_at):
            state = replace(state, workspace=BudgetFlags(warning=state.workspace.warning, exceeded=False))
        if any(budget.exceeded and ended(budget.period_end) for budget in state.scoped_budgets):
            state = replace(
                state,
                scoped_budgets=tuple(
                    replace(budget, exceeded=False) if budget.exceeded and ended(budget.period_end) else budget
                    for budget in state.scoped_budgets
                ),
            )
        return state

    def budget_for(self, call: CallScope) -> BudgetHit | None:
        """The budget state that concerns this call: exceeded over warning; the workspace's before a scoped one."""
        if self.workspace is None:  # an older server: any budget's flags concern every call
            if self.budget_exceeded:
                return BudgetHit("exceeded", None, resets_at=self.resets_at)
            return BudgetHit("warning", None, resets_at=self.resets_at) if self.budget_warning else None
        concerned = [budget for budget in self.scoped_budgets if budget.concerns(call)]
        exceeded = [budget for budget in concerned if budget.exceeded]
        if self.workspace.exceeded or exceeded:
            ends = [self.resets_at] if self.workspace.exceeded else []
            ends += [budget.period_end for budget in exceeded]
            resets_at = None if None in ends else max(end for end in ends if end is not None)
            if self.workspace.exceeded:
                return BudgetHit("exceeded", "workspace", resets_at=resets_at)
            first = exceeded[0]
            return BudgetHit("exceeded", first.dimension, first.value, first.window, resets_at)
        if self.workspace.warning:
            return BudgetHit("warning", "workspace")
        warned = next((budget for budget in concerned if budget.warning), None)
        return None if warned is None else BudgetHit("warning", warned.dimension, warned.value, warned.window)


@dataclass
class Decision:
    """What enforcement does to one call: the action, whether it is applied or only observed, the new params."""

    action: str
    mode: str
    params: dict[str, Any]
    detail: str = ""
    budget: BudgetHit | None = None
    """The budget the action answers to."""

    def metadata(self) -> dict[str, Any]:
        tags: dict[str, Any] = {"opsmeterAction": self.action, "opsmeterActionMode": self.mode}
        if self.detail:
            tags["opsmeterActionDetail"] = self.detail[:200]
        return tags


class RuntimePolicy:
    def __init__(self, client: Opsmeter, *, enabled: bool, url: str, refresh_interval: float) -> None:
        self.enabled = enabled
        self._client = client
        self._url = url
        self._refresh_interval = refresh_interval
        self._snapshot: PolicySnapshot | None = None
        self._snapshot_at = 0.0
        self._last_try = float("-inf")
        self._lock = threading.Lock()
        self._stale_logged = False
        self.models = ModelNames()

    @property
    def snapshot(self) -> PolicySnapshot | None:
        return self._snapshot

    def _after_fork(self) -> None:
        """In a forked child: new locks (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()
        self.models._after_fork()

    def maybe_refresh(self, http: httpx.Client) -> None:
        """Called by the sender thread: refresh when the snapshot is older than the interval, or early when an
        ingest answer says the budget state changed and the snapshot cannot take its flags (scoped budgets)."""
        if not self.enabled:
            return
        since = time.monotonic() - self._last_try
        early = since >= min(self._refresh_interval, EARLY_REFRESH_AFTER) and self._ingest_disagrees()
        if since >= self._refresh_interval or early:
            self._fetch(http)

    def _ingest_disagrees(self) -> bool:
        """An ingest answer newer than a snapshot with scoped budgets has other budget flags than it. Those flags
        say "any budget", which cannot tell which calls they concern: the policy says it, so it is asked again."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.takes_ingest_flags or self._client.flags_at <= self._snapshot_at:
            return False
        flags = self._client.flags
        return (flags.budget_warning, flags.budget_exceeded) != (snapshot.budget_warning, snapshot.budget_exceeded)

    def ensure(self) -> None:
        """Before a wrapped call: with no snapshot yet, fetch one now (bounded by the client's timeout)."""
        if self.enabled and self._snapshot is None and time.monotonic() - self._last_try >= self._refresh_interval:
            self.refresh()

    def refresh(self) -> PolicySnapshot | None:
        """Fetch the policy now (at most the client's timeout); the last snapshot if that fails. Never raises."""
        self._last_try = time.monotonic()
        try:
            with self._client._http() as http:
                self._fetch(http)
        except Exception as exc:
            self._client._log_once(
                f"policy:{type(exc).__name__}", "opsmeter could not fetch the runtime policy: %r", exc
            )
        return self._snapshot

    def _fetch(self, http: httpx.Client) -> None:
        self._last_try = time.monotonic()
        try:
            answer = http.get(self._url, headers={"X-API-Key": self._client.api_key})
            if answer.status_code == 200:
                snapshot = PolicySnapshot.from_json(answer.json())
                with self._lock:
                    self._snapshot, self._snapshot_at = snapshot, time.monotonic()
                    self._stale_logged = False
        except Exception as exc:  # a bad URL or key, an odd answer: the last snapshot stays (and ages out)
            self._client._log_once(
                f"policy:{type(exc).__name__}", "opsmeter could not fetch the runtime policy: %r", exc
            )

    def _state(self) -> PolicySnapshot | None:
        """The snapshot, with a newer ingest answer's mode (and its budget flags where they can stand for the
        workspace's), and every exceeded budget whose window has ended since counted as available again."""
        snapshot = self._snapshot
        if snapshot is None:
            return None
        newest = max(self._snapshot_at, self._client.flags_at)
        if time.monotonic() - newest > STALE_AFTER_INTERVALS * self._refresh_interval and self._last_try > newest:
            if not self._stale_logged:
                self._stale_logged = True
                log.warning("opsmeter: the runtime policy could not be refreshed; enforcement is off until it can")
            return None
        answered_at = self._snapshot_at  # when the budget state in hand was said
        if self._client.flags_at > self._snapshot_at:
            flags = self._client.flags
            snapshot = replace(snapshot, policy_mode=flags.policy_mode)
            if snapshot.takes_ingest_flags:
                snapshot = snapshot.with_ingest_flags(flags.budget_warning, flags.budget_exceeded)
                answered_at = self._client.flags_at
        now = datetime.now(timezone.utc)
        return snapshot.lifted(now - timedelta(seconds=time.monotonic() - answered_at), now)

    def decide(
        self, provider: str, params: Mapping[str, Any], *, tokens_param: str, call: CallScope | None = None
    ) -> Decision | None:
        """The decision for a call with these params (and this scope: by default its model, for no endpoint tag and
        no user; its model named as the gateway has said, once it has); None when no action is configured for the
        budget state that concerns it. Never raises."""
        if not self.enabled:
            return None
        try:
            state = self._state()
            if state is None:
                return None
            call = call if call is not None else CallScope.of(None, params.get("model"), None)
            if call.model_normalized is None:
                call = replace(call, model_normalized=self.models.normalized(provider, call.model))
            return decide(state, provider, params, tokens_param=tokens_param, call=call)
        except Exception as exc:  # enforcement must never break the call: no action
            self._client._log_once(f"decide:{type(exc).__name__}", "opsmeter runtime enforcement failed: %r", exc)
            return None

    def _queue_deadline(self, decision: Decision | None) -> float:
        state = self._state()
        wait = state.actions.queue_max_wait_seconds if state else 0.0
        resets_at = decision.budget.resets_at if decision is not None and decision.budget is not None else None
        if resets_at is not None:
            wait = min(wait, max(0.0, (resets_at - datetime.now(timezone.utc)).total_seconds()) + 1.0)
        return time.monotonic() + wait

    def _poll_interval(self) -> float:
        return max(0.2, min(self._refresh_interval, 10.0))

    def wait_in_queue(
        self, provider: str, params: Mapping[str, Any], *, tokens_param: str, call: CallScope | None = None
    ) -> Decision | None:
        """Block (sync) until the action is no longer ``queue`` or the deadline; the decision then."""
        decision = self.decide(provider, params, tokens_param=tokens_param, call=call)
        deadline = self._queue_deadline(decision)
        while decision is not None and decision.action == "queue" and decision.mode == "applied":
            left = deadline - time.monotonic()
            if left <= 0:
                raise _queue_timed_out(decision)
            time.sleep(min(left, self._poll_interval()))
            self.refresh()
            decision = self.decide(provider, params, tokens_param=tokens_param, call=call)
        return decision

    async def wait_in_queue_async(
        self, provider: str, params: Mapping[str, Any], *, tokens_param: str, call: CallScope | None = None
    ) -> Decision | None:
        decision = self.decide(provider, params, tokens_param=tokens_param, call=call)
        deadline = self._queue_deadline(decision)
        while decision is not None and decision.action == "queue" and decision.mode == "applied":
            left = deadline - time.monotonic()
            if left <= 0:
                raise _queue_timed_out(decision)
            await asyncio.sleep(min(left, self._poll_interval()))
            await asyncio.to_thread(self.refresh)
            decision = self.decide(provider, params, tokens_param=tokens_param, call=call)
        return decision


def _queue_timed_out(decision: Decision) -> BudgetExceededError:
    hit = decision.budget or BudgetHit("exceeded", None)
    return hit.error(f"{hit.describe()}: it did not reset within the queue's deadline", "queue")


def block_error(decision: Decision) -> BudgetExceededError:
    """The error an applied ``block`` raises into the caller, naming the budget it answers to."""
    hit = decision.budget or BudgetHit("exceeded", None)
    return hit.error(f"{hit.describe()}: the workspace's runtime action blocks this provider call", "block")


def decide(
    state: PolicySnapshot,
    provider: str,
    params: Mapping[str, Any],
    *,
    tokens_param: str,
    call: CallScope | None = None,
) -> Decision | None:
    """What the workspace's runtime actions do to a call with these params in this state (None: nothing). Only the
    workspace's budgets and the scoped budgets matching ``call`` (by default: the params' model, no endpoint tag,
    no user) count."""
    hit = state.budget_for(call if call is not None else CallScope.of(None, params.get("model"), None))
    if hit is None:
        return None
    action = state.actions.on_budget_exceeded if hit.level == "exceeded" else state.actions.on_budget_warning
    if action == "none":
        return None
    mode = "observed" if state.policy_mode == "observe" else "applied"
    new = dict(params)
    detail = ""
    if action == "clamp":
        cap = state.actions.clamp_max_tokens
        asked = params.get(tokens_param)
        if cap is None or (isinstance(asked, int) and asked <= cap):
            return None
        new[tokens_param] = cap
        detail = f"{tokens_param} {asked if asked is not None else 'unset'}->{cap}"
    elif action == "fallback":
        model = str(params.get("model"))
        cheaper = state.actions.fallback_models.get(model) or state.actions.fallback_models.get(f"{provider}/{model}")
        if not cheaper or cheaper == model:
            return None
        new["model"] = cheaper
        detail = f"model {model}->{cheaper}"
    elif action == "block":
        detail = hit.describe()
    elif action == "queue":
        detail = f"wait up to {state.actions.queue_max_wait_seconds:g}s for the budget window to reset"
    return Decision(action, mode, new if mode == "applied" else dict(params), detail, hit)
