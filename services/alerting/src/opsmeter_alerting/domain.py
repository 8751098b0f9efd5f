"""Pure alerting rules: settings, which decision alerts whom, cooldown scope, schedules, retries, signatures."""

import hashlib
import hmac
import random
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsmeter_contracts import AnyEvent, SpikeDetected
from opsmeter_contracts.billing import BillingAlertRaised
from opsmeter_contracts.events import PlanLimitReached
from opsmeter_contracts.policy import (
    BudgetExceeded,
    BudgetThresholdPayload,
    BudgetWarningReached,
    EnforcementChanged,
    KillSwitchChanged,
    UnitCostBreached,
)
from opsmeter_runtime.money import format_micro_usd
from opsmeter_runtime.projections import PlanTier, plan_at_least

DEFAULT_COOLDOWN = timedelta(seconds=300)

Family = Literal["budget", "unit_cost", "spike", "policy"]
Mode = Literal["immediate", "daily_summary", "weekly_summary"]
SummaryKind = Literal["daily_summary", "weekly_summary", "weekly_executive_report"]
BUDGET_ALERT_PLAN: PlanTier = "starter"
SUMMARY_PLAN: PlanTier = BUDGET_ALERT_PLAN
EXECUTIVE_REPORT_PLAN: PlanTier = "team"
DELIVERY_PLAN: dict[str, PlanTier] = {"budget": BUDGET_ALERT_PLAN}
"""Alert families whose delivery a plan gates (SPEC §4); the others go out on every plan."""

_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

ChannelType = Literal["webhook", "slack", "email"]


# --- settings ---------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class WebhookChannel(_Model):
    type: Literal["webhook"] = "webhook"
    id: str = Field(default="", max_length=40)
    url: str = Field(pattern=r"^https?://", max_length=2048)
    secret: str | None = Field(default=None, min_length=16, max_length=256, description="Omitted: keep the stored one.")
    enabled: bool = True


class SlackChannel(_Model):
    type: Literal["slack"] = "slack"
    id: str = Field(default="", max_length=40)
    url: str | None = Field(
        default=None, pattern=r"^https?://", max_length=2048, description="Omitted: keep the stored one."
    )
    enabled: bool = True


class EmailChannel(_Model):
    type: Literal["email"] = "email"
    id: str = Field(default="", max_length=40)
    to: tuple[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)], ...] = Field(
        min_length=1, max_length=20
    )
    enabled: bool = True


Channel = Annotated[WebhookChannel | SlackChannel | EmailChannel, Field(discriminator="type")]


class Schedule(_Model):
    send_time: str = Field(default="09:00", alias="sendTime")
    timezone: str = "UTC"

    @field_validator("send_time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not _HH_MM.match(value):
            raise ValueError("sendTime must be HH:MM (00:00 to 23:59)")
        return value

    @field_validator("timezone")
    @classmethod
    def _iana(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @property
    def local_time(self) -> time:
        hours, minutes = self.send_time.split(":")
        return time(int(hours), int(minutes))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class AlertSettings(_Model):
    """A workspace's alert settings, as stored (secrets included) and as PUT (camelCase)."""

    modes: dict[Family, Mode] = Field(default_factory=dict)
    schedule: Schedule = Field(default_factory=Schedule)
    cooldown_seconds: int = Field(
        default=int(DEFAULT_COOLDOWN.total_seconds()), ge=0, le=7 * 86_400, alias="cooldownSeconds"
    )
    weekly_executive_report: bool = Field(default=False, alias="weeklyExecutiveReport")
    channels: tuple[Channel, ...] = Field(default=(), max_length=10)
    version: int = 0

    def mode_of(self, family: Family) -> Mode:
        return self.modes.get(family, "immediate")

    @property
    def summary_kinds(self) -> tuple[SummaryKind, ...]:
        kinds: list[SummaryKind] = []
        for kind in ("daily_summary", "weekly_summary"):
            if kind in self.modes.values():
                kinds.append(kind)
        if self.weekly_executive_report:
            kinds.append("weekly_executive_report")
        return tuple(kinds)

    def required_plan(self) -> PlanTier | None:
        """The plan these settings need beyond Free, or None."""
        if self.weekly_executive_report:
            return EXECUTIVE_REPORT_PLAN
        if any(mode != "immediate" for mode in self.modes.values()):
            return SUMMARY_PLAN
        return None

    def with_channel_ids(self) -> "AlertSettings":
        """Give every channel a stable id (its position and type unless the caller named it)."""
        named = tuple(
            c if c.id else c.model_copy(update={"id": f"{c.type}-{index + 1}"}) for index, c in enumerate(self.channels)
        )
        return self.model_copy(update={"channels": named})

    def http_destinations(self) -> list[tuple[str, str]]:
        """``(field, url)`` of every channel that posts over HTTP, the field named as a validation error names it."""
        return [
            (f"channels.{index}.{c.type}.url", c.url)
            for index, c in enumerate(self.channels)
            if isinstance(c, WebhookChannel | SlackChannel) and c.url
        ]

    def keeping_secrets_of(self, previous: "AlertSettings") -> "AlertSettings":
        """A webhook PUT without a secret keeps the stored secret of the channel with the same id (GET hides it)."""
        stored = {c.id: c for c in previous.channels}
        channels = []
        for channel in self.channels:
            hidden = (
                "secret"
                if isinstance(channel, WebhookChannel)
                else "url"
                if isinstance(channel, SlackChannel)
                else None
            )
            if hidden and getattr(channel, hidden) is None:
                kept = getattr(stored.get(channel.id), hidden, None)
                if not kept:
                    raise ValueError(f"{channel.type} channel {channel.id!r} needs its {hidden}")
                channel = channel.model_copy(update={hidden: kept})
            channels.append(channel)
        return self.model_copy(update={"channels": tuple(channels)})


def mask(secret: str) -> str:
    return f"••••{secret[-4:]}"


def public_settings(settings: AlertSettings) -> dict[str, object]:
    """What GET shows: everything but secrets, which appear as a masked hint."""
    body = settings.model_dump(mode="json", by_alias=True)
    for channel in body["channels"]:
        if channel["type"] == "webhook":
            channel["secretHint"] = mask(channel.pop("secret") or "")
        if channel["type"] == "slack":
            channel["urlHint"] = mask(channel.pop("url") or "")
    return body


# --- destinations -----------------------------------------------------------------------------------

IPAddress = IPv4Address | IPv6Address

_SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")
_NAT64 = IPv6Network("64:ff9b::/96")
_NUMERIC_IPV4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host spells out, or None for a name.

    Besides dotted quads and (bracketed, zoned) IPv6, resolvers read ``2130706433``, ``0177.0.0.1``,
    ``0x7f.1`` and ``127.1`` as IPv4 (``inet_aton``); they are read here the same way so none passes as a name.
    """
    bare = host.strip("[]").split("%", 1)[0]
    try:
        return ip_address(bare)
    except ValueError:
        pass
    if not _NUMERIC_IPV4.match(bare):
        return None
    try:
        return IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def refusal_of(address: IPAddress) -> str | None:
    """Why alerts may not be sent to ``address``, or None when it is a public unicast address.

    IPv6 forms that carry an IPv4 address (mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4) are
    judged by the IPv4 address they reach.
    """
    if isinstance(address, IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFF_FFFF)
        if embedded is not None and (reason := refusal_of(embedded)):
            return reason
        if address.ipv4_mapped or address in _NAT64:
            return None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (CGNAT)", isinstance(address, IPv4Address) and address in _SHARED_ADDRESS_SPACE),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    return next((reason for reason, refused in checks if refused), None)


# --- alerts -----------------------------------------------------------------------------------------

Severity = Literal["info", "warning", "critical", "resolved"]


@dataclass(frozen=True)
class AlertContent:
    """What one alert says, whatever the channel."""

    family: Family | Literal["summary", "system"]
    rule: str
    scope: str
    severity: Severity
    title: str
    lines: tuple[str, ...] = ()
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join((self.title, *self.lines))


def plan_required_to_deliver(family: str, plan: PlanTier | None) -> PlanTier | None:
    """The plan a workspace on ``plan`` lacks to receive alerts of ``family``, or None when they go out.

    A plan not known yet (billing has not projected it) delivers: a budget alert withheld by mistake cannot
    be sent later, one delivered by mistake costs nothing (ADR 66).
    """
    required = DELIVERY_PLAN.get(family)
    if required is None or plan is None or plan_at_least(plan, required):
        return None
    return required


def cooldown_key_parts(workspace_id: str, content: AlertContent) -> tuple[str, str, str]:
    return workspace_id, content.rule, content.scope


# --- schedules --------------------------------------------------------------------------------------


def _at_local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``at`` on local ``day`` (PEP 495 ``fold=0``): a time skipped by DST goes out as far
    after the gap as it fell into it (02:30 → 03:30), a repeated time at its first occurrence."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def send_instants(kind: SummaryKind, schedule: Schedule, around: datetime) -> list[datetime]:
    """Scheduled instants (UTC) near ``around``: daily at the send time, weekly on Mondays at the send time."""
    zone, at = schedule.zone, schedule.local_time
    today = around.astimezone(zone).date()
    days = [today + timedelta(days=d) for d in range(-8, 9)]
    if kind != "daily_summary":
        days = [d for d in days if d.weekday() == 0]
    return sorted(_at_local(d, at, zone) for d in days)


def next_send_at(kind: SummaryKind, schedule: Schedule, now: datetime) -> datetime:
    """The first scheduled instant strictly after ``now``, in UTC."""
    return next(t for t in send_instants(kind, schedule, now) if t > now)


def last_send_at(kind: SummaryKind, schedule: Schedule, now: datetime) -> datetime:
    """The latest scheduled instant at or before ``now``, in UTC."""
    return [t for t in send_instants(kind, schedule, now) if t <= now][-1]


def period_label(kind: SummaryKind, schedule: Schedule, instant: datetime) -> str:
    """The slot an instant fills: the local date for daily summaries, the ISO week for weekly ones."""
    local = instant.astimezone(schedule.zone).date()
    if kind == "daily_summary":
        return local.isoformat()
    year, week, _ = local.isocalendar()
    return f"{year}-W{week:02d}"


# --- delivery ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base: timedelta = timedelta(seconds=2)
    cap: timedelta = timedelta(minutes=10)

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> timedelta:
        """Exponential backoff with jitter: uniform in [ceiling / 2, ceiling], ceiling = base × 2^(n-1) capped."""
        ceiling: timedelta = min(self.cap, self.base * (2 ** max(failed_attempts - 1, 0)))
        fraction = 0.5 + 0.5 * (rng or random).random()
        return ceiling * fraction


Outcome = Literal["delivered", "retry", "failed"]


def outcome_of_status(status_code: int) -> Outcome:
    """2xx delivered; 408, 429 and 5xx are worth another attempt; any other answer will not change."""
    if 200 <= status_code < 300:
        return "delivered"
    if status_code in (408, 429) or status_code >= 500:
        return "retry"
    return "failed"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``X-Opsmeter-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>`` with the channel secret."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str, timestamp: int, body: bytes, presented: str, *, now: int, tolerance_s: int = 300
) -> bool:
    """What a receiver does: a fresh timestamp and a matching signature, compared in constant time."""
    return abs(now - timestamp) <= tolerance_s and hmac.compare_digest(signature(secret, timestamp, body), presented)


# --- decisions → alerts -----------------------------------------------------------------------------


def _usd(micro_usd: int) -> str:
    return f"${format_micro_usd(micro_usd)}"


def _scope_of(payload: BudgetThresholdPayload) -> str:
    return f"{payload.scope}:{payload.scope_value or '*'}:{payload.window}"


def _blocked(p: BudgetThresholdPayload) -> str:
    return "; ingest is blocked" if p.scope_value is None else f"; ingest of this {p.scope}'s events is blocked"


def _budget_lines(p: BudgetThresholdPayload) -> tuple[str, ...]:
    lines = [
        f"Spend {_usd(p.spend_micro_usd)} of {_usd(p.limit_micro_usd)} ({p.window} budget, "
        f"{'workspace' if p.scope == 'workspace' else f'{p.scope} {p.scope_value}'}).",
        f"Period {p.period_start.isoformat()} to {p.period_end.isoformat()}; enforcement {p.enforcement}, "
        f"policy mode {p.policy_mode}{_blocked(p) if p.blocks_ingest else ''}.",
    ]
    if p.projected_end_of_period_micro_usd is not None:
        lines.append(f"Projected end of period: {_usd(p.projected_end_of_period_micro_usd)}.")
    return tuple(lines)


def alert_for_decision(decision: AnyEvent) -> AlertContent | None:
    """What an immediate alert says about a decision, or None for decisions that alert nobody."""
    if isinstance(decision, BudgetWarningReached | BudgetExceeded):
        p = decision.payload
        exceeded = isinstance(decision, BudgetExceeded)
        return AlertContent(
            family="budget",
            rule="budget_exceeded" if exceeded else f"budget_warning:{p.threshold_ratio:g}",
            scope=_scope_of(p),
            severity="critical" if exceeded else "warning",
            title=f"Budget exceeded: the {p.window} budget is spent"
            if exceeded
            else f"Budget warning: {p.threshold_ratio:.0%} of the {p.window} budget reached",
            lines=_budget_lines(p),
            facts={"spendUsd": format_micro_usd(p.spend_micro_usd), "limitUsd": format_micro_usd(p.limit_micro_usd)},
        )
    if isinstance(decision, UnitCostBreached):
        u = decision.payload
        return AlertContent(
            family="unit_cost",
            rule=f"unit_cost:{u.rule_id}",
            scope=f"model:{u.model or '*'}:endpoint_tag:{u.endpoint_tag or '*'}",
            severity="warning",
            title=f"Unit cost above the rule {u.rule_id}",
            lines=(
                f"{u.metric}: {_usd(u.observed_micro_usd)} observed over {u.requests} requests, "
                f"max {_usd(u.max_micro_usd)}.",
            ),
        )
    if isinstance(decision, SpikeDetected):
        s = decision.payload
        drivers = ", ".join(f"{d.dimension}={d.key} (+{_usd(d.cost_delta_micro_usd)})" for d in s.top_drivers[:3])
        return AlertContent(
            family="spike",
            rule="spike",
            scope=s.window,
            severity="warning",
            title=f"Cost spike over {s.window}: {_usd(s.current_cost_micro_usd)} vs {_usd(s.previous_cost_micro_usd)}",
            lines=(f"Top drivers: {drivers}." if drivers else "No single driver stands out.",),
        )
    if isinstance(decision, PlanLimitReached):
        q = decision.payload
        return AlertContent(
            family="system",
            rule="plan_limit_reached",
            scope=q.period,
            severity="critical",
            title="Telemetry paused due to plan limit. LLM calls keep running.",
            lines=(
                f"The {q.plan} plan's {q.monthly_request_quota:,} requests for {q.period} are used up; "
                "ingest answers 402 plan_limit_reached until the period ends or the plan is upgraded.",
            ),
        )
    if isinstance(decision, KillSwitchChanged | EnforcementChanged):
        w = decision.payload
        if isinstance(decision, KillSwitchChanged):
            on = w.kill_switch
            title = "Kill switch on: policy runs in observe mode" if on else "Kill switch off: policy enforces again"
            severity: Severity = "warning" if on else "resolved"
            rule = "kill_switch"
        else:
            title = f"Enforcement changed from {w.previous_enforcement} to {w.enforcement}"
            severity, rule = "info", "enforcement"
        return AlertContent(
            family="policy",
            rule=rule,
            scope="workspace",
            severity=severity,
            title=title,
            lines=(f"Changed by a {w.changed_by_role} credential ({w.changed_by_credential_id}).",),
        )
    return None


def alert_for_billing(event: BillingAlertRaised) -> AlertContent:
    """Billing could not apply what Lemon Squeezy said: the workspace's owner hears of it (its plan did not change),
    with what to do; the operator has the log line."""
    b = event.payload
    if b.kind == "unknown_variant":
        return AlertContent(
            family="system",
            rule="billing:unknown_variant",
            scope=b.subscription_id,
            severity="critical",
            title="Your subscription change could not be applied: your plan has not changed",
            lines=(
                f"Lemon Squeezy reported subscription {b.subscription_id} on a product variant this service has no "
                "plan for. Contact support with this message: the variant needs mapping to a plan.",
                b.detail,
            ),
        )
    return AlertContent(
        family="system",
        rule="billing:subscription_reassignment_rejected",
        scope=b.subscription_id,
        severity="warning",
        title="A change that would move your subscription to another workspace was refused",
        lines=(f"Subscription {b.subscription_id} stays with this workspace.", b.detail),
    )


def recovery_for(content: AlertContent) -> AlertContent:
    """The message that says a condition an alert raised has cleared."""
    return AlertContent(
        family=content.family,
        rule=f"{content.rule}:resolved",
        scope=content.scope,
        severity="resolved",
        title=f"Resolved: {content.title}",
        lines=("The condition has cleared (its budget period ended or the limit no longer applies).",),
    )


def is_recovery(content: AlertContent) -> bool:
    return content.severity == "resolved"


def weekly_report_lines(report: Mapping[str, Any] | None) -> list[str]:
    """The weekly executive report's headline figures for a summary message."""
    if report is None:
        return ["The report's figures are unavailable right now; open the full report below."]
    summary = report["summary"]
    current, previous, delta = summary["current"], summary["previous"], summary["delta"]
    change = delta.get("costChangeRatio")
    lines = [
        f"Week {report['week']['from']} to {report['week']['to']}: ${current['costUsd']} over "
        f"{current['requests']:,} requests (previous week ${previous['costUsd']}"
        + (f", {float(change):+.0%})" if change is not None else ")"),
        f"Cost per request ${current['costPerRequestUsd'] or '0'}; tokens {current['tokens']:,}.",
    ]
    for mover in report.get("topMovers", [])[:3]:
        lines.append(f"Top mover {mover['dimension']}={mover['key']}: {mover['costDeltaUsd']} USD")
    budget = report.get("budgetStatus", {})
    if budget.get("budgetExceeded"):
        lines.append("Budget exceeded.")
    elif budget.get("budgetWarning"):
        lines.append("Budget warning.")
    return lines
