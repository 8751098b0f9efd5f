"""Channels: a signed webhook, a Slack incoming webhook (both over HTTP) and email over SMTP."""

import json
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiosmtplib
import httpx

from opsmeter_alerting.domain import (
    EmailChannel,
    Outcome,
    SlackChannel,
    WebhookChannel,
    outcome_of_status,
    signature,
)

SEVERITY_EMOJI = {
    "info": ":information_source:",
    "warning": ":warning:",
    "critical": ":rotating_light:",
    "resolved": ":white_check_mark:",
}


def slack_escape(text: str) -> str:
    """Slack reads ``<...>`` as a link or a mention (``<!channel>``) and ``&`` as an entity; alert lines carry what
    an ingest key sent (endpoint tags, user ids, models), so those three are escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Message:
    """One alert on its way to one channel; ``delivery_id`` is the idempotency key, the same on every attempt."""

    delivery_id: str
    alert: dict[str, Any]

    @property
    def text(self) -> str:
        return "\n".join([self.alert["title"], *self.alert.get("lines", [])])

    def webhook_body(self) -> bytes:
        a = self.alert
        body = {
            "deliveryId": self.delivery_id,
            "alertId": a["alertId"],
            "workspaceId": a["workspaceId"],
            "family": a["family"],
            "rule": a["rule"],
            "scope": a["scope"],
            "severity": a["severity"],
            "title": a["title"],
            "lines": a.get("lines", []),
            "facts": a.get("facts", {}),
            "createdAt": a["createdAt"],
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def slack_body(self) -> bytes:
        a = self.alert
        emoji = SEVERITY_EMOJI.get(a["severity"], "")
        title = slack_escape(a["title"])
        section = slack_escape("\n".join(a.get("lines", []))) or title
        context = slack_escape(f"{a['workspaceId']} · {a['rule']} · {a['scope']}")
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": a["title"][:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ]
        return json.dumps({"text": f"{emoji} {title}".strip(), "blocks": blocks}).encode()


class ChannelSender(Protocol):
    async def send(
        self, channel: WebhookChannel | SlackChannel | EmailChannel, message: Message, *, now: datetime
    ) -> Attempt: ...


class Channels:
    """Sends through the channel's kind: HTTP for webhook and Slack, SMTP for email."""

    def __init__(self, http: httpx.AsyncClient, *, smtp_url: str | None, smtp_from: str, timeout_s: float) -> None:
        self._http = http
        self._smtp_url = smtp_url
        self._smtp_from = smtp_from
        self._timeout_s = timeout_s

    async def send(
        self, channel: WebhookChannel | SlackChannel | EmailChannel, message: Message, *, now: datetime
    ) -> Attempt:
        if isinstance(channel, EmailChannel):
            return await self._email(channel, message)
        if isinstance(channel, WebhookChannel):
            body = message.webhook_body()
            timestamp = int(now.timestamp())
            headers = {
                "Content-Type": "application/json",
                "X-Opsmeter-Timestamp": str(timestamp),
                "X-Opsmeter-Signature": signature(channel.secret or "", timestamp, body),
                "X-Opsmeter-Delivery-Id": message.delivery_id,
                "Idempotency-Key": message.delivery_id,
            }
            return await self._post(channel.url, body, headers)
        assert channel.url is not None
        return await self._post(
            channel.url,
            message.slack_body(),
            {"Content-Type": "application/json", "X-Opsmeter-Delivery-Id": message.delivery_id},
        )

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        try:
            answer = await self._http.post(url, content=body, headers=headers, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            return Attempt("retry", error=f"{type(exc).__name__}: {exc}"[:500])
        outcome = outcome_of_status(answer.status_code)
        return Attempt(outcome, answer.status_code, None if outcome == "delivered" else answer.text[:200])

    async def _email(self, channel: EmailChannel, message: Message) -> Attempt:
        if not self._smtp_url:
            return Attempt("failed", error="no SMTP server is configured (OPSMETER_SMTP_URL)")
        server = urlsplit(self._smtp_url)
        email = EmailMessage()
        email["From"] = self._smtp_from
        email["To"] = ", ".join(channel.to)
        email["Subject"] = f"[Opsmeter] {message.alert['title']}"
        email["Message-ID"] = f"<{message.delivery_id}@opsmeter>"
        email["X-Opsmeter-Delivery-Id"] = message.delivery_id
        email.set_content(message.text)
        try:
            await aiosmtplib.send(
                email,
                hostname=server.hostname or "127.0.0.1",
                port=server.port or (465 if server.scheme == "smtps" else 25),
                username=server.username,
                password=server.password,
                use_tls=server.scheme == "smtps",
                start_tls=False if server.scheme == "smtp" else None,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return Attempt("failed", error=str(exc)[:500])
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Attempt("retry", error=f"{type(exc).__name__}: {exc}"[:500])
        return Attempt("delivered")
