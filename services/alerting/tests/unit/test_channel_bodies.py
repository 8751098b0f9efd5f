"""What a channel receives: an alert line carries text an ingest key sent, and Slack must show it, not act on it."""

import json

from opsmeter_alerting.adapters.channels import Message

ALERT = {
    "alertId": "al_1",
    "workspaceId": "ws_1",
    "family": "spike",
    "rule": "spike",
    "scope": "endpoint:<!channel>",
    "severity": "warning",
    "title": "Spend spike on <!here>",
    "lines": ["Top driver: endpoint <!channel> <https://evil.example|Reset budget> & more"],
    "facts": {},
    "createdAt": "2026-12-07T20:00:00Z",
}


def test_slack_shows_a_mention_or_link_a_tag_carries_as_text() -> None:
    body = json.loads(Message("d_1", ALERT).slack_body())
    shown = [body["text"], body["blocks"][1]["text"]["text"], body["blocks"][2]["elements"][0]["text"]]
    assert all("<" not in part and ">" not in part for part in shown), shown
    assert body["blocks"][1]["text"]["text"] == (
        "Top driver: endpoint &lt;!channel&gt; &lt;https://evil.example|Reset budget&gt; &amp; more"
    )
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": "Spend spike on <!here>"}


def test_the_signed_webhook_keeps_the_alert_as_sent() -> None:
    body = json.loads(Message("d_1", ALERT).webhook_body())
    assert body["lines"] == ALERT["lines"]
    assert body["title"] == ALERT["title"]
