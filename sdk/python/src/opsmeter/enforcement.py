"""Runtime enforcement (opt-in): the workspace's runtime actions applied before a wrapped provider call.

The actions live in the policy engine (``runtimeActions`` of ``/v1/workspaces/{id}/policy``) and reach the
SDK through ``GET /v1/runtime/policy`` (the API key), refreshed at most every ``refresh_interval``; the
budget flags of every ingest answer refresh the budget state in between. With the kill switch on
(``policyMode: observe``) the SDK only reports what it would have done.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import httpx

from opsmeter.errors import BudgetExceededError

if TYPE_CHECKING:
    from opsmeter.client import Opsmeter

ACTIONS = ("none", "block", "clamp", "fallback", "queue")
STALE_AFTER_INTERVALS = 3
"""A snapshot no answer (policy or ingest) has confirmed for this many refresh intervals, while tried, is not
acted on: enforcement fails open while Opsmeter is unreachable, rather than staying closed for good."""

log = logging.getLogger("opsmeter")


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
    """When the last exceeded window ends (the budget is available again), if exceeded."""
    actions: RuntimeActions = field(default_factory=RuntimeActions)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PolicySnapshot:
        ends = [
            datetime.fromisoformat(str(w["periodEnd"]).replace("Z", "+00:00"))
            for w in body.get("exceededWindows") or []
            if isinstance(w, dict) and w.get("periodEnd")
        ]
        return cls(
            policy_mode=str(body.get("policyMode") or "enforce"),
            budget_warning=bool(body.get("budgetWarning")),
            budget_exceeded=bool(body.get("budgetExceeded")),
            resets_at=max(ends) if ends else None,
            actions=RuntimeActions.from_json(body.get("runtimeActions") or {}),
        )


@dataclass
class Decision:
    """What enforcement does to one call: the action, whether it is applied or only observed, the new params."""

    action: str
    mode: str
    params: dict[str, Any]
    detail: str = ""

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

    @property
    def snapshot(self) -> PolicySnapshot | None:
        return self._snapshot

    def _after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def maybe_refresh(self, http: httpx.Client) -> None:
        """Called by the sender thread: refresh when the snapshot is older than the interval."""
        if self.enabled and time.monotonic() - self._last_try >= self._refresh_interval:
            self._fetch(http)

    def ensure(self) -> None:
        """Before a wrapped call: with no snapshot yet, fetch one now (bounded by the client's timeout)."""
        if self.enabled and self._snapshot is None and time.monotonic() - self._last_try >= self._refresh_interval:
            self.refresh()

    def refresh(self) -> PolicySnapshot | None:
        """Fetch the policy now (at most the client's timeout); the last snapshot if that fails. Never raises."""
        self._last_try = time.monotonic()
        try:
            with httpx.Client(timeout=self._client.timeout, verify=self._client._verify) as http:
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
        """The snapshot, its budget flags and mode replaced by a newer ingest answer's."""
        snapshot = self._snapshot
        if snapshot is None:
            return None
        newest = max(self._snapshot_at, self._client.flags_at)
        if time.monotonic() - newest > STALE_AFTER_INTERVALS * self._refresh_interval and self._last_try > newest:
            if not self._stale_logged:
                self._stale_logged = True
                log.warning("opsmeter: the runtime policy could not be refreshed; enforcement is off until it can")
            return None
        if self._client.flags_at > self._snapshot_at:
            flags = self._client.flags
            snapshot = PolicySnapshot(
                policy_mode=flags.policy_mode,
                budget_warning=flags.budget_warning,
                budget_exceeded=flags.budget_exceeded,
                resets_at=snapshot.resets_at,
                actions=snapshot.actions,
            )
        now = datetime.now(timezone.utc)
        answered = now - timedelta(seconds=time.monotonic() - newest)
        if snapshot.budget_exceeded and snapshot.resets_at is not None and answered < snapshot.resets_at <= now:
            # every window the last answer saw exceeded has ended since: the budget is available again
            snapshot = PolicySnapshot(
                policy_mode=snapshot.policy_mode,
                budget_warning=snapshot.budget_warning,
                budget_exceeded=False,
                resets_at=snapshot.resets_at,
                actions=snapshot.actions,
            )
        return snapshot

    def decide(self, provider: str, params: Mapping[str, Any], *, tokens_param: str) -> Decision | None:
        """The decision for a call with these params; None when no action is configured for the state."""
        state = self._state() if self.enabled else None
        return None if state is None else decide(state, provider, params, tokens_param=tokens_param)

    def _queue_deadline(self) -> float:
        state = self._state()
        wait = state.actions.queue_max_wait_seconds if state else 0.0
        if state is not None and state.resets_at is not None:
            wait = min(wait, max(0.0, (state.resets_at - datetime.now(timezone.utc)).total_seconds()) + 1.0)
        return time.monotonic() + wait

    def _poll_interval(self) -> float:
        return max(0.2, min(self._refresh_interval, 10.0))

    def wait_in_queue(self, provider: str, params: Mapping[str, Any], *, tokens_param: str) -> Decision | None:
        """Block (sync) until the action is no longer ``queue`` or the deadline; the decision then."""
        deadline = self._queue_deadline()
        decision = self.decide(provider, params, tokens_param=tokens_param)
        while decision is not None and decision.action == "queue" and decision.mode == "applied":
            left = deadline - time.monotonic()
            if left <= 0:
                raise BudgetExceededError(
                    "the workspace budget is exceeded and did not reset within the queue's deadline", action="queue"
                )
            time.sleep(min(left, self._poll_interval()))
            self.refresh()
            decision = self.decide(provider, params, tokens_param=tokens_param)
        return decision

    async def wait_in_queue_async(
        self, provider: str, params: Mapping[str, Any], *, tokens_param: str
    ) -> Decision | None:
        deadline = self._queue_deadline()
        decision = self.decide(provider, params, tokens_param=tokens_param)
        while decision is not None and decision.action == "queue" and decision.mode == "applied":
            left = deadline - time.monotonic()
            if left <= 0:
                raise BudgetExceededError(
                    "the workspace budget is exceeded and did not reset within the queue's deadline", action="queue"
                )
            await asyncio.sleep(min(left, self._poll_interval()))
            await asyncio.to_thread(self.refresh)
            decision = self.decide(provider, params, tokens_param=tokens_param)
        return decision


def decide(state: PolicySnapshot, provider: str, params: Mapping[str, Any], *, tokens_param: str) -> Decision | None:
    """What the workspace's runtime actions do to a call with these params in this state (None: nothing)."""
    if state.budget_exceeded:
        action = state.actions.on_budget_exceeded
    elif state.budget_warning:
        action = state.actions.on_budget_warning
    else:
        return None
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
        detail = "budget exceeded" if state.budget_exceeded else "budget warning"
    elif action == "queue":
        detail = f"wait up to {state.actions.queue_max_wait_seconds:g}s for the budget window to reset"
    return Decision(action, mode, new if mode == "applied" else dict(params), detail)
