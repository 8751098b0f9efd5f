"""Channels: a signed webhook, a Slack incoming webhook (both over HTTP) and email over SMTP."""

import asyncio
import base64
import json
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiosmtplib
import httpcore
import httpx

from opsmeter_alerting.adapters.destinations import RefusedDestination, UnresolvedDestination
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


USER_AGENT = "Opsmeter-Alerts/1"
HTTP_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


class Channels:
    """Sends through the channel's kind: HTTP for webhook and Slack, SMTP for email.

    ``http`` is a pool that connects only to allowed destinations (``destinations.checked_pool``). An attempt keeps
    the receiver's status code and a fixed reason, never what the receiver said: a URL an admin typed must not
    become a way to read another service's answers (ADR 70).
    """

    def __init__(
        self, http: httpcore.AsyncConnectionPool, *, smtp_url: str | None, smtp_from: str, timeout_s: float
    ) -> None:
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
            status = await self._status_of_post(httpx.URL(url), body, headers)
        except httpx.InvalidURL:
            return Attempt("failed", error="invalid_url: not a valid http(s) URL")
        except RefusedDestination:
            return Attempt("failed", error="destination_refused: the URL does not resolve to a public address")
        except UnresolvedDestination:
            return Attempt("retry", error="dns_error: the URL's host name did not resolve")
        except TimeoutError:
            return Attempt("retry", error=f"timeout: no answer within {self._timeout_s:g} s")
        except HTTP_ERRORS as exc:
            return Attempt("retry", error=type(exc).__name__)
        outcome = outcome_of_status(status)
        return Attempt(outcome, status, None if outcome == "delivered" else f"HTTP {status}")

    async def _status_of_post(self, url: httpx.URL, body: bytes, headers: dict[str, str]) -> int:
        """POST and read the status line only; the receiver's body is never read."""
        if url.scheme not in ("http", "https") or not url.host:
            raise httpx.InvalidURL(str(url))
        sent = {"Host": url.netloc.decode("ascii"), "User-Agent": USER_AGENT, **headers}
        if url.username or url.password:
            userinfo = f"{url.username}:{url.password}".encode()
            sent["Authorization"] = f"Basic {base64.b64encode(userinfo).decode('ascii')}"
        target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
        timeouts = dict.fromkeys(("connect", "read", "write", "pool"), self._timeout_s)
        async with asyncio.timeout(self._timeout_s):
            async with self._http.stream(
                "POST", target, headers=list(sent.items()), content=body, extensions={"timeout": timeouts}
            ) as answer:
                return answer.status

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
            refused = ", ".join(f"{r.recipient} ({r.code})" for r in exc.recipients)
            return Attempt("failed", error=f"SMTPRecipientsRefused: {refused}"[:500])
        except aiosmtplib.SMTPResponseException as exc:
            return Attempt("retry", error=f"{type(exc).__name__}: SMTP {exc.code}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Attempt("retry", error=type(exc).__name__)
        return Attempt("delivered")
