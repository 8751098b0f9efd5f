"""Alerting's use cases: raise an alert, deliver what is due, send the summaries whose slot came, replay.

Everything takes ``now`` from an injected clock, so schedules and retries are tested with a fixed one.
"""

import hashlib
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog

from opsmeter_alerting.adapters.channels import Attempt, ChannelSender, Message
from opsmeter_alerting.adapters.destinations import Destinations
from opsmeter_alerting.adapters.redis import RedisAlertSettingsStore, RedisAlertStore, StoredSettings, cooldown_key
from opsmeter_alerting.adapters.reports import WeeklyReports
from opsmeter_alerting.domain import (
    DELIVERY_PLAN,
    EXECUTIVE_REPORT_PLAN,
    SUMMARY_PLAN,
    AlertContent,
    AlertSettings,
    RetryPolicy,
    SummaryKind,
    is_recovery,
    last_send_at,
    period_label,
    plan_required_to_deliver,
    recovery_for,
    send_instants,
    weekly_report_lines,
)
from opsmeter_alerting.errors import InvalidRequest
from opsmeter_contracts import Topics
from opsmeter_contracts.alerting import (
    AlertChannelState,
    AlertDeliveryDeadLettered,
    AlertDeliveryDeadLetteredPayload,
    AlertSettingsChanged,
    AlertSettingsChangedPayload,
)
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.projections import PlanProjection, plan_at_least

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def alert_id_for(guard: str) -> str:
    return "al_" + hashlib.sha256(guard.encode()).hexdigest()[:24]


@dataclass
class AlertService:
    alerts: RedisAlertStore
    settings: RedisAlertSettingsStore
    channels: ChannelSender
    plans: PlanProjection
    publisher: EventPublisher
    clock: Clock
    destinations: Destinations = field(default_factory=Destinations)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease_s: float = 60.0
    disable_after_failures: int = 3
    report_url: str = "http://127.0.0.1:8084"
    reports: WeeklyReports | None = None
    rng: random.Random = field(default_factory=random.Random)

    # --- raising -------------------------------------------------------------------------------------

    async def raise_alert(
        self,
        workspace_id: str,
        content: AlertContent,
        *,
        guard: str,
        clears_at: datetime | None = None,
        only_channels: set[str] | None = None,
        cooldown: bool = True,
    ) -> str | None:
        """Record one alert once per ``guard`` and queue a delivery per enabled channel. Returns its id, or None.

        Below the plan its family needs, the alert is recorded as ``plan_required`` and goes nowhere.
        """
        stored = await self.settings.get(workspace_id)
        settings = stored.settings if stored else AlertSettings()
        now = self.clock()
        alert_id = alert_id_for(guard)
        plan = await self.plans.get(workspace_id) if content.family in DELIVERY_PLAN else None
        required_plan = plan_required_to_deliver(content.family, plan.plan if plan else None)
        immediate = (
            content.family == "summary" or content.family == "system" or settings.mode_of(content.family) == "immediate"
        )
        channels = [c for c in settings.channels if c.enabled and (only_channels is None or c.id in only_channels)]
        if required_plan:
            status, immediate = "plan_required", False
        elif not immediate:
            status = "held_for_summary"
        else:
            status = "queued" if channels else "no_channels"
        alert: dict[str, Any] = {
            "alertId": alert_id,
            "workspaceId": workspace_id,
            "family": content.family,
            "rule": content.rule,
            "scope": content.scope,
            "severity": content.severity,
            "title": content.title,
            "lines": list(content.lines),
            "facts": content.facts,
            "createdAt": now.isoformat(),
            "status": status,
            "deliveries": [f"{alert_id}.{c.id}" for c in channels] if immediate else [],
        }
        if required_plan:
            alert["requiredPlan"] = required_plan
        deliveries = (
            [
                {
                    "deliveryId": f"{alert_id}.{c.id}",
                    "alertId": alert_id,
                    "workspaceId": workspace_id,
                    "channelId": c.id,
                    "channelType": c.type,
                    "status": "pending",
                    "attempts": [],
                    "nextAttemptAt": now.isoformat(),
                }
                for c in channels
            ]
            if immediate
            else []
        )
        use_cooldown = cooldown and immediate and not is_recovery(content) and settings.cooldown_seconds > 0
        outcome = await self.alerts.record(
            alert,
            deliveries,
            guard=guard,
            cooldown=(cooldown_key(workspace_id, content.rule, content.scope), settings.cooldown_seconds)
            if use_cooldown
            else None,
            due=now,
        )
        if outcome == 0:
            return None
        if is_recovery(content):
            await self.alerts.clear_cooldown(workspace_id, content.rule.removesuffix(":resolved"), content.scope)
        if clears_at is not None and required_plan is None:
            await self.alerts.open_condition(
                {
                    "workspaceId": workspace_id,
                    "family": content.family,
                    "rule": content.rule,
                    "scope": content.scope,
                    "title": content.title,
                    "clearsAt": clears_at.isoformat(),
                },
                clears_at,
            )
        log.info(
            "alert_recorded",
            workspace_id=workspace_id,
            alert_id=alert_id,
            rule=content.rule,
            suppressed=outcome == 2,
            channels=len(deliveries),
            required_plan=required_plan,
        )
        return alert_id

    async def send_recoveries(self) -> int:
        """A recovery message for every condition whose period has ended (budgets reset with their window)."""
        sent = 0
        for condition in await self.alerts.cleared_conditions(self.clock()):
            content = recovery_for(
                AlertContent(
                    family=condition["family"],
                    rule=condition["rule"],
                    scope=condition["scope"],
                    severity="warning",
                    title=condition["title"],
                )
            )
            guard = (
                f"recovery:{condition['workspaceId']}:{condition['rule']}:{condition['scope']}:{condition['clearsAt']}"
            )
            await self.raise_alert(condition["workspaceId"], content, guard=guard)
            await self.alerts.close_condition(condition)
            sent += 1
        return sent

    # --- delivering ----------------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Attempt every delivery that is due; returns how many attempts were made."""
        now = self.clock()
        attempts = 0
        for delivery_id in await self.alerts.claim_due(now, self.lease_s):
            await self._attempt(delivery_id, now)
            attempts += 1
        return attempts

    async def _attempt(self, delivery_id: str, now: datetime) -> None:
        delivery = await self.alerts.delivery(delivery_id)
        alert = await self.alerts.alert(delivery["alertId"]) if delivery else None
        if delivery is None or alert is None or delivery["status"] != "pending":
            await self.alerts.finish(
                delivery or {"deliveryId": delivery_id, "workspaceId": ""}, dead=False
            ) if delivery else None
            return
        stored = await self.settings.get(delivery["workspaceId"])
        channel = next((c for c in stored.settings.channels if c.id == delivery["channelId"]), None) if stored else None
        if channel is None or not channel.enabled:
            result = Attempt("failed", error="the channel was removed or disabled")
        else:
            result = await self.channels.send(channel, Message(delivery_id, alert), now=now)
        delivery["attempts"].append(
            {
                "attempt": len(delivery["attempts"]) + 1,
                "at": now.isoformat(),
                "outcome": result.outcome,
                "statusCode": result.status_code,
                "error": result.error,
            }
        )
        failed_for_good = result.outcome == "failed" or (
            result.outcome == "retry" and len(delivery["attempts"]) >= self.retry.max_attempts
        )
        if result.outcome == "delivered":
            delivery["status"], delivery["nextAttemptAt"] = "delivered", None
            await self.alerts.finish(delivery, dead=False)
            await self.alerts.reset_failures(delivery["workspaceId"], delivery["channelId"])
        elif failed_for_good:
            delivery["status"], delivery["nextAttemptAt"] = "dead_lettered", None
            await self.alerts.finish(delivery, dead=True)
            await self._dead_lettered(delivery, alert, result)
        else:
            due = now + self.retry.delay(len(delivery["attempts"]), self.rng)
            delivery["nextAttemptAt"] = due.isoformat()
            await self.alerts.save_delivery(delivery)
            await self.alerts.reschedule(delivery_id, due)
        log.info("alert_delivery_attempt", delivery_id=delivery_id, outcome=result.outcome, status=result.status_code)

    async def _dead_lettered(self, delivery: dict[str, Any], alert: dict[str, Any], result: Attempt) -> None:
        workspace_id, channel_id = delivery["workspaceId"], delivery["channelId"]
        now = self.clock()
        await self.publisher.publish(
            Topics.ALERTING_EVENTS,
            AlertDeliveryDeadLettered(
                event_id=uuid.uuid4(),
                occurred_at=now,
                ingested_at=now,
                workspace_id=workspace_id,
                payload=AlertDeliveryDeadLetteredPayload(
                    alert_id=alert["alertId"],
                    delivery_id=delivery["deliveryId"],
                    channel_id=channel_id,
                    channel_type=delivery["channelType"],
                    attempts=len(delivery["attempts"]),
                    last_error=(result.error or f"HTTP {result.status_code}")[:512],
                ),
            ),
        )
        if (
            alert["family"] == "system"
            or await self.alerts.count_failure(workspace_id, channel_id) < self.disable_after_failures
        ):
            return
        stored = await self.settings.get(workspace_id)
        if stored is None:
            return
        channels = tuple(
            c.model_copy(update={"enabled": False}) if c.id == channel_id else c for c in stored.settings.channels
        )
        updated = (
            await self.save_settings(
                workspace_id,
                stored.settings.model_copy(update={"channels": channels}),
                credential_id="alerting",
                role="system",
                reason="channel_disabled_after_failures",
            )
        ).settings
        remaining = {c.id for c in channels if c.enabled}
        await self.raise_alert(
            workspace_id,
            AlertContent(
                family="system",
                rule="channel_disabled",
                scope=channel_id,
                severity="critical",
                title=f"Alert channel {channel_id} ({delivery['channelType']}) was disabled",
                lines=(
                    f"{self.disable_after_failures} alerts in a row could not be delivered to it; the last error: "
                    f"{result.error or result.status_code}.",
                    "Fix the receiver, then enable the channel in the alert settings and replay the dead letters.",
                ),
            ),
            guard=f"channel_disabled:{workspace_id}:{channel_id}:{updated.version}",
            only_channels=remaining,
            cooldown=False,
        )

    async def replay_dead_letters(self, workspace_id: str) -> list[str]:
        """Queue every dead-lettered delivery of the workspace again, with its idempotency key unchanged."""
        replayed = []
        now = self.clock()
        for delivery_id in await self.alerts.dead_letters(workspace_id):
            delivery = await self.alerts.delivery(delivery_id)
            if delivery is None:
                continue
            delivery["status"], delivery["nextAttemptAt"] = "pending", now.isoformat()
            delivery["attempts"] = [*delivery["attempts"][-20:]]
            delivery["replayedAt"] = now.isoformat()
            await self.alerts.requeue(delivery, now)
            replayed.append(delivery_id)
        return replayed

    async def log(self, workspace_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The delivery log: each alert with its deliveries, attempts and outcomes, newest first."""
        out = []
        for alert_id in await self.alerts.alert_ids(workspace_id, limit=limit):
            alert = await self.alerts.alert(alert_id)
            if alert is None:
                continue
            deliveries = [d for d in [await self.alerts.delivery(i) for i in alert["deliveries"]] if d]
            if alert["status"] == "queued" and deliveries:
                states = {d["status"] for d in deliveries}
                alert["status"] = (
                    "delivered"
                    if states == {"delivered"}
                    else "dead_lettered"
                    if "dead_lettered" in states and "pending" not in states
                    else "delivering"
                )
            alert["deliveries"] = deliveries
            out.append(alert)
        return out

    # --- settings ------------------------------------------------------------------------------------

    async def save_settings(
        self,
        workspace_id: str,
        settings: AlertSettings,
        *,
        credential_id: str,
        role: Literal["owner", "admin", "member", "ingest", "system"],
        reason: Literal["changed_by_admin", "channel_disabled_after_failures"] = "changed_by_admin",
    ) -> StoredSettings:
        """Store the settings as the next version; publish the change (no URLs, no secrets) for the audit trail.

        An admin's change is refused (422 naming the field) when a channel URL points at a non-public address.
        """
        if reason == "changed_by_admin" and (refused := await self.destinations.refused_fields(settings)):
            raise InvalidRequest("invalid alert settings", errors=refused)
        now = self.clock()
        previous = await self.settings.get(workspace_id)
        settings = settings.model_copy(update={"version": (previous.settings.version if previous else 0) + 1})
        stored = await self.settings.save(workspace_id, settings, now=now)
        await self.publisher.publish(
            Topics.ALERTING_EVENTS,
            AlertSettingsChanged(
                event_id=uuid.uuid4(),
                occurred_at=now,
                ingested_at=now,
                workspace_id=workspace_id,
                payload=AlertSettingsChangedPayload(
                    version=settings.version,
                    modes=dict(settings.modes),
                    send_time=settings.schedule.send_time,
                    timezone=settings.schedule.timezone,
                    cooldown_seconds=settings.cooldown_seconds,
                    weekly_executive_report=settings.weekly_executive_report,
                    channels=tuple(
                        AlertChannelState(channel_id=c.id, type=c.type, enabled=c.enabled) for c in settings.channels
                    ),
                    reason=reason,
                    changed_by_credential_id=credential_id,
                    changed_by_role=role,
                ),
            ),
        )
        return stored

    # --- summaries -----------------------------------------------------------------------------------

    async def run_schedules(self) -> int:
        """Send each workspace's summaries whose slot has come; a slot already claimed is never sent again."""
        sent = 0
        now = self.clock()
        for workspace_id in await self.settings.scheduled_workspaces():
            stored = await self.settings.get(workspace_id)
            if stored is None:
                continue
            plan = await self.plans.get(workspace_id)
            tier = plan.plan if plan else "free"
            for kind in stored.settings.summary_kinds:
                required = EXECUTIVE_REPORT_PLAN if kind == "weekly_executive_report" else SUMMARY_PLAN
                if not plan_at_least(tier, required):
                    continue
                if await self.send_summary(workspace_id, stored, kind, now):
                    sent += 1
        return sent

    async def send_summary(self, workspace_id: str, stored: StoredSettings, kind: SummaryKind, now: datetime) -> bool:
        schedule = stored.settings.schedule
        slot = last_send_at(kind, schedule, now)
        if slot < stored.enabled_at:
            return False
        previous = [t for t in send_instants(kind, schedule, slot - timedelta(days=7)) if t < slot][-1]
        since = max(previous, stored.enabled_at)
        content = await self._summary_content(workspace_id, stored.settings, kind, since, slot)
        guard = f"summary:{workspace_id}:{kind}:{period_label(kind, schedule, slot)}"
        return await self.raise_alert(workspace_id, content, guard=guard, cooldown=False) is not None

    async def _summary_content(
        self, workspace_id: str, settings: AlertSettings, kind: SummaryKind, since: datetime, until: datetime
    ) -> AlertContent:
        families = {f for f, m in settings.modes.items() if m == kind} if kind != "weekly_executive_report" else None
        alerts = [
            a
            for a in [
                await self.alerts.alert(i)
                for i in await self.alerts.alert_ids(
                    workspace_id, since=since, until=until - timedelta(microseconds=1), limit=500
                )
            ]
            if a
        ]
        alerts = [
            a
            for a in alerts
            if a["family"] not in ("summary", "system") and (families is None or a["family"] in families)
        ]
        counts = Counter(a["rule"] for a in alerts)
        title = {
            "daily_summary": "Daily budget alert summary",
            "weekly_summary": "Weekly budget alert summary",
            "weekly_executive_report": "Weekly executive report",
        }[kind]
        lines = [f"{since.isoformat()} to {until.isoformat()}: {len(alerts)} alert(s)."]
        lines += [f"{rule}: {n}" for rule, n in counts.most_common(10)]
        lines += [f"- {a['createdAt']} {a['title']}" for a in reversed(alerts[:20])]
        if kind == "weekly_executive_report":
            report = await self.reports.weekly_executive(workspace_id) if self.reports else None
            lines[:0] = weekly_report_lines(report)
            lines.append(f"Full report: {self.report_url}/v1/workspaces/{workspace_id}/reports/weekly-executive.html")
        return AlertContent(
            family="summary",
            rule=kind,
            scope=period_label(kind, settings.schedule, until),
            severity="info",
            title=title,
            lines=tuple(lines),
            facts={"alerts": len(alerts)},
        )
