"""Alerts through real receivers (a local HTTP server, a local SMTP server) on real Redis and Kafka, fixed clock."""

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

import pytest
from cryptography.fernet import Fernet
from redis.asyncio import Redis

from opsmeter_alerting.adapters.channels import Channels
from opsmeter_alerting.adapters.destinations import Destinations, checked_pool
from opsmeter_alerting.adapters.redis import RedisAlertSettingsStore, RedisAlertStore, Sealer, settings_key
from opsmeter_alerting.alerts import AlertService
from opsmeter_alerting.domain import AlertContent, AlertSettings, IPAddress, RetryPolicy, verify_signature
from opsmeter_alerting.errors import InvalidRequest
from opsmeter_alerting.handlers import alert_on_decision
from opsmeter_alerting.testing import HttpReceiver, SmtpReceiver
from opsmeter_contracts.policy import (
    BudgetExceeded,
    BudgetThresholdPayload,
    BudgetWarningReached,
    KillSwitchChanged,
    PolicySwitchPayload,
)
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.localstack import free_port
from opsmeter_runtime.projections import PlanProjection, PlanRecord

SECRET = "whsec_" + "x" * 20
START = datetime(2025, 3, 29, 6, 0, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="module")
def http_receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


SEALER = Sealer(Fernet.generate_key().decode())


@pytest.fixture(scope="module")
def smtp_receiver() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
async def service(
    redis_client: Redis, publisher: EventPublisher, smtp_receiver: SmtpReceiver
) -> AsyncIterator[tuple[AlertService, FixedClock]]:
    clock = FixedClock(START)
    receivers_on_loopback = Destinations(allow_private=True)
    async with checked_pool(receivers_on_loopback) as http:
        yield (
            AlertService(
                alerts=RedisAlertStore(redis_client),
                settings=RedisAlertSettingsStore(redis_client, SEALER),
                channels=Channels(http, smtp_url=smtp_receiver.url, smtp_from="alerts@opsmeter.test", timeout_s=5),
                plans=PlanProjection(redis_client),
                publisher=publisher,
                clock=clock,
                destinations=receivers_on_loopback,
                retry=RetryPolicy(max_attempts=5, base=timedelta(seconds=2), cap=timedelta(seconds=60)),
            ),
            clock,
        )


async def metadata_dns(host: str, port: int) -> list[IPAddress]:
    """A resolver whose one name points at the cloud metadata address."""
    if host != "metadata.example.test":
        raise OSError(f"{host} does not resolve")
    return [ip_address("169.254.169.254")]


@pytest.fixture
async def strict_service(
    service: tuple[AlertService, FixedClock], smtp_receiver: SmtpReceiver
) -> AsyncIterator[tuple[AlertService, FixedClock]]:
    """The same service as production runs it: private destinations refused."""
    alerts, clock = service
    public_only = Destinations(allow_private=False, resolve=metadata_dns)
    async with checked_pool(public_only) as http:
        channels = Channels(http, smtp_url=smtp_receiver.url, smtp_from="alerts@opsmeter.test", timeout_s=5)
        yield dataclasses.replace(alerts, destinations=public_only, channels=channels), clock


def budget_payload(at: datetime, *, ratio: float = 1.0, spend_micro_usd: int = 1_200_000) -> BudgetThresholdPayload:
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return BudgetThresholdPayload(
        scope="workspace",
        window="daily",
        period_start=day,
        period_end=day + timedelta(days=1),
        limit_micro_usd=1_000_000,
        threshold_ratio=ratio,
        threshold_micro_usd=int(1_000_000 * ratio),
        spend_micro_usd=spend_micro_usd,
        enforcement="advisory",
        policy_mode="enforce",
        blocks_ingest=False,
    )


def exceeded(workspace_id: str, at: datetime) -> BudgetExceeded:
    return BudgetExceeded(
        event_id=uuid.uuid4(), occurred_at=at, ingested_at=at, workspace_id=workspace_id, payload=budget_payload(at)
    )


def warning(workspace_id: str, at: datetime) -> BudgetWarningReached:
    return BudgetWarningReached(
        event_id=uuid.uuid4(),
        occurred_at=at,
        ingested_at=at,
        workspace_id=workspace_id,
        payload=budget_payload(at, ratio=0.8, spend_micro_usd=850_000),
    )


def kill_switch_on(workspace_id: str, at: datetime) -> KillSwitchChanged:
    return KillSwitchChanged(
        event_id=uuid.uuid4(),
        occurred_at=at,
        ingested_at=at,
        workspace_id=workspace_id,
        payload=PolicySwitchPayload(
            settings_version=2,
            enforcement="advisory",
            kill_switch=True,
            policy_mode="observe",
            previous_enforcement="advisory",
            previous_kill_switch=False,
            changed_by_credential_id="cred_test",
            changed_by_role="owner",
        ),
    )


async def configure(service: AlertService, workspace_id: str, http: HttpReceiver, **extra: Any) -> str:
    email = f"ops-{workspace_id}@example.test"
    settings = AlertSettings.model_validate(
        {
            "channels": [
                {"type": "webhook", "url": http.url(f"/hook/{workspace_id}"), "secret": SECRET},
                {"type": "slack", "url": http.url(f"/slack/{workspace_id}")},
                {"type": "email", "to": [email]},
            ],
            **extra,
        }
    ).with_channel_ids()
    await service.save_settings(workspace_id, settings, credential_id="test", role="owner")
    return email


async def drain(
    service: AlertService, clock: FixedClock, *, step: timedelta = timedelta(seconds=1), rounds: int = 5
) -> None:
    for _ in range(rounds):
        await service.deliver_due()
        clock.advance(step)


@pytest.mark.integration
class TestImmediateDelivery:
    async def test_a_crossing_reaches_each_channel_once_and_a_second_within_the_cooldown_is_suppressed(
        self,
        service: tuple[AlertService, FixedClock],
        http_receiver: HttpReceiver,
        smtp_receiver: SmtpReceiver,
        unique: str,
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        email = await configure(alerts, ws, http_receiver)
        first = exceeded(ws, clock())
        await alert_on_decision(first, alerts=alerts)
        await alert_on_decision(first, alerts=alerts)  # redelivered by Kafka: nothing new
        await drain(alerts, clock)
        clock.advance(timedelta(seconds=120))
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock)

        hooks, slack, mails = http_receiver.on(f"/hook/{ws}"), http_receiver.on(f"/slack/{ws}"), smtp_receiver.to(email)
        assert (len(hooks), len(slack), len(mails)) == (1, 1, 1)
        hook = hooks[0]
        assert verify_signature(
            SECRET,
            int(hook.headers["x-opsmeter-timestamp"]),
            hook.body,
            hook.headers["x-opsmeter-signature"],
            now=int(clock().timestamp()),
        )
        assert hook.headers["idempotency-key"] == hook.headers["x-opsmeter-delivery-id"]
        assert hook.json()["rule"] == "budget_exceeded"
        assert "Budget exceeded" in slack[0].json()["text"]
        assert slack[0].json()["blocks"]
        assert "Budget exceeded" in mails[0]["Subject"]

        log = await alerts.log(ws)
        assert [a["status"] for a in log] == ["suppressed", "delivered"]

    async def test_after_the_cooldown_the_same_rule_alerts_again(
        self, service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, unique: str
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        await configure(alerts, ws, http_receiver, cooldownSeconds=60)
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock)
        await alerts.alerts.clear_cooldown(
            ws, "budget_exceeded", "workspace:*:daily"
        )  # Redis TTLs run on the wall clock
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock)
        assert len(http_receiver.on(f"/hook/{ws}")) == 2

    async def test_a_receiver_failing_twice_gets_the_alert_on_the_third_attempt_with_the_same_key(
        self, service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, unique: str
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        await configure(alerts, ws, http_receiver)
        http_receiver.fail_next[f"/hook/{ws}"] = 2
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock, step=timedelta(seconds=10), rounds=6)

        hooks = http_receiver.on(f"/hook/{ws}")
        assert len(hooks) == 3, "two failures, then one success, then nothing more"
        assert len({h.headers["idempotency-key"] for h in hooks}) == 1
        assert len({h.headers["x-opsmeter-signature"] for h in hooks}) == 3, (
            "each attempt is signed with its own timestamp"
        )
        [alert] = await alerts.log(ws)
        webhook = next(d for d in alert["deliveries"] if d["channelType"] == "webhook")
        assert [a["outcome"] for a in webhook["attempts"]] == ["retry", "retry", "delivered"]
        assert [a["statusCode"] for a in webhook["attempts"]] == [500, 500, 200]
        assert webhook["status"] == "delivered"


@pytest.mark.integration
class TestBudgetAlertsByPlan:
    async def test_free_records_the_crossing_as_plan_required_and_delivers_nothing(
        self,
        service: tuple[AlertService, FixedClock],
        http_receiver: HttpReceiver,
        smtp_receiver: SmtpReceiver,
        redis_client: Redis,
        unique: str,
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        await PlanProjection(redis_client).save(ws, PlanRecord("free", 120, 10_000))
        email = await configure(alerts, ws, http_receiver)
        await alert_on_decision(warning(ws, clock()), alerts=alerts)
        clock.advance(timedelta(minutes=10))
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock)

        assert http_receiver.on(f"/hook/{ws}") == []
        assert http_receiver.on(f"/slack/{ws}") == []
        assert smtp_receiver.to(email) == []
        log = await alerts.log(ws)
        assert [(a["rule"], a["status"], a["requiredPlan"], a["deliveries"]) for a in log] == [
            ("budget_exceeded", "plan_required", "starter", []),
            ("budget_warning:0.8", "plan_required", "starter", []),
        ]
        clock.advance(timedelta(days=1))
        await alerts.send_recoveries()
        assert len(await alerts.log(ws)) == 2, "nothing was sent, so nothing resolves"

    async def test_starter_gets_the_same_crossing_delivered(
        self,
        service: tuple[AlertService, FixedClock],
        http_receiver: HttpReceiver,
        smtp_receiver: SmtpReceiver,
        redis_client: Redis,
        unique: str,
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        await PlanProjection(redis_client).save(ws, PlanRecord("starter", 300, 100_000))
        email = await configure(alerts, ws, http_receiver)
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock)

        hooks = http_receiver.on(f"/hook/{ws}")
        assert (len(hooks), len(http_receiver.on(f"/slack/{ws}")), len(smtp_receiver.to(email))) == (1, 1, 1)
        assert hooks[0].json()["rule"] == "budget_exceeded"
        [alert] = await alerts.log(ws)
        assert alert["status"] == "delivered"
        assert "requiredPlan" not in alert

    async def test_a_plan_not_known_yet_still_delivers(
        self, service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, unique: str
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        await configure(alerts, ws, http_receiver)
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock)
        assert len(http_receiver.on(f"/hook/{ws}")) == 1

    async def test_free_still_gets_alerts_that_no_plan_gates(
        self, service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, redis_client: Redis, unique: str
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        await PlanProjection(redis_client).save(ws, PlanRecord("free", 120, 10_000))
        await configure(alerts, ws, http_receiver)
        await alert_on_decision(kill_switch_on(ws, clock()), alerts=alerts)
        await drain(alerts, clock)
        [hook] = http_receiver.on(f"/hook/{ws}")
        assert hook.json()["rule"] == "kill_switch"


@pytest.mark.integration
class TestDeadLetters:
    async def test_dead_letters_are_replayable_and_a_failing_channel_is_disabled_with_a_notice(
        self, service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, unique: str
    ) -> None:
        alerts, clock = service
        alerts.retry = RetryPolicy(max_attempts=2, base=timedelta(seconds=1), cap=timedelta(seconds=2))
        ws = f"ws_{unique}"
        await configure(alerts, ws, http_receiver, cooldownSeconds=0)
        http_receiver.fail_next[f"/hook/{ws}"] = 2
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock, step=timedelta(seconds=5))
        [alert] = await alerts.log(ws)
        assert alert["status"] == "dead_lettered"

        replayed = await alerts.replay_dead_letters(ws)
        assert len(replayed) == 1
        await drain(alerts, clock, step=timedelta(seconds=5))
        hooks = http_receiver.on(f"/hook/{ws}")
        assert [h.headers["idempotency-key"] for h in hooks] == [replayed[0]] * 3
        assert (await alerts.log(ws))[0]["status"] == "delivered"

        http_receiver.fail_next[f"/hook/{ws}"] = 100
        for _ in range(alerts.disable_after_failures):
            await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
            await drain(alerts, clock, step=timedelta(seconds=5))
        stored = await alerts.settings.get(ws)
        assert stored is not None
        assert [c.enabled for c in stored.settings.channels] == [False, True, True]
        notices = [r.json() for r in http_receiver.on(f"/slack/{ws}") if "disabled" in r.json()["text"]]
        assert len(notices) == 1


@pytest.mark.integration
class TestSummaries:
    async def test_the_daily_summary_goes_out_once_at_9_berlin_on_both_sides_of_dst(
        self, service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, redis_client: Redis, unique: str
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        await PlanProjection(redis_client).save(ws, PlanRecord("starter", 600, 100_000))
        clock.now = datetime(2025, 3, 28, 12, 0, tzinfo=UTC)
        await configure(
            alerts,
            ws,
            http_receiver,
            modes={"budget": "daily_summary"},
            schedule={"sendTime": "09:00", "timezone": "Europe/Berlin"},
        )
        await alert_on_decision(exceeded(ws, clock()), alerts=alerts)
        await drain(alerts, clock)
        assert http_receiver.on(f"/hook/{ws}") == [], "summary mode holds the alert for the summary"

        sent_at = []
        for minute in range(0, 3 * 24 * 60, 30):
            clock.now = datetime(2025, 3, 28, 12, 0, tzinfo=UTC) + timedelta(minutes=minute)
            before = len(http_receiver.on(f"/hook/{ws}"))
            await alerts.run_schedules()
            await alerts.run_schedules()  # a second scheduler, or a restart, in the same tick
            await alerts.deliver_due()
            if len(http_receiver.on(f"/hook/{ws}")) > before:
                sent_at.append(clock.now)
        assert sent_at == [
            datetime(2025, 3, 29, 8, 0, tzinfo=UTC),  # 09:00 CET
            datetime(2025, 3, 30, 7, 0, tzinfo=UTC),  # 09:00 CEST, after the change that night
            datetime(2025, 3, 31, 7, 0, tzinfo=UTC),
        ]
        first = http_receiver.on(f"/hook/{ws}")[0].json()
        assert first["title"] == "Daily budget alert summary"
        assert any("budget_exceeded: 1" in line for line in first["lines"])

    async def test_summaries_need_a_paid_plan(
        self, service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, redis_client: Redis, unique: str
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        await PlanProjection(redis_client).save(ws, PlanRecord("free", 60, 10_000))
        await configure(alerts, ws, http_receiver, modes={"budget": "daily_summary"})
        clock.advance(timedelta(days=2))
        assert await alerts.run_schedules() == 0


@pytest.mark.integration
class TestDestinations:
    async def test_an_admin_save_pointing_at_private_addresses_is_refused_naming_each_field(
        self, strict_service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, unique: str
    ) -> None:
        alerts, _ = strict_service
        ws = f"ws_{unique}"
        settings = AlertSettings.model_validate(
            {
                "channels": [
                    {"type": "email", "to": ["ops@example.test"]},
                    {"type": "webhook", "url": "http://10.0.0.5:8080/internal", "secret": SECRET},
                    {"type": "slack", "url": "http://metadata.example.test/latest/meta-data/"},
                    {"type": "webhook", "url": http_receiver.url("/hook"), "secret": SECRET},
                    {"type": "webhook", "url": "http://2130706433:8080/", "secret": SECRET},
                    {"type": "slack", "url": "https://hooks.not-yet-resolving.example.test/services/T/B/X"},
                ]
            }
        ).with_channel_ids()

        with pytest.raises(InvalidRequest) as refused:
            await alerts.save_settings(ws, settings, credential_id="test", role="owner")

        assert refused.value.status_code == 422
        assert [e["field"] for e in refused.value.body["errors"]] == [
            "channels.1.webhook.url",
            "channels.2.slack.url",
            "channels.3.webhook.url",
            "channels.4.webhook.url",
        ]
        assert await alerts.settings.get(ws) is None

    async def test_a_stored_private_destination_fails_at_send_time_without_a_connection(
        self, strict_service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, unique: str
    ) -> None:
        alerts, clock = strict_service
        ws = f"ws_{unique}"
        before_the_rule = AlertSettings.model_validate(
            {"channels": [{"type": "webhook", "url": http_receiver.url(f"/hook/{ws}"), "secret": SECRET}]}
        ).with_channel_ids()
        await alerts.settings.save(ws, before_the_rule, now=clock())
        test_alert = AlertContent(family="system", rule="test", scope="workspace", severity="info", title="Test")
        await alerts.raise_alert(ws, test_alert, guard=f"test:{ws}", cooldown=False)
        await drain(alerts, clock)

        assert http_receiver.on(f"/hook/{ws}") == []
        [alert] = await alerts.log(ws)
        [attempt] = alert["deliveries"][0]["attempts"]
        assert (attempt["outcome"], attempt["statusCode"]) == ("failed", None)
        assert attempt["error"] == "destination_refused: the URL does not resolve to a public address"

    async def test_a_failed_delivery_keeps_the_status_and_a_fixed_reason_never_the_answer(
        self, service: tuple[AlertService, FixedClock], http_receiver: HttpReceiver, unique: str
    ) -> None:
        alerts, clock = service
        alerts.retry = RetryPolicy(max_attempts=2, base=timedelta(seconds=1), cap=timedelta(seconds=2))
        ws = f"ws_{unique}"
        leak = b'{"AccessKeyId":"ASIA-INTERNAL","SecretAccessKey":"internal-only-secret"}'
        http_receiver.answers[f"/hook/{ws}"] = (404, leak)
        http_receiver.answers[f"/slack/{ws}"] = (503, b"<html>internal admin console: internal-only-secret</html>")
        await configure(alerts, ws, http_receiver)
        await alert_on_decision(kill_switch_on(ws, clock()), alerts=alerts)
        await drain(alerts, clock, step=timedelta(seconds=5))

        [alert] = await alerts.log(ws)
        attempts = {d["channelType"]: d["attempts"] for d in alert["deliveries"]}
        assert [(a["statusCode"], a["error"]) for a in attempts["webhook"]] == [(404, "HTTP 404")]
        assert [(a["statusCode"], a["error"]) for a in attempts["slack"]] == [(503, "HTTP 503")] * 2
        assert "internal-only-secret" not in json.dumps(alert)
        assert "ASIA-INTERNAL" not in json.dumps(alert)

    async def test_a_connection_failure_keeps_only_the_error_class(
        self, service: tuple[AlertService, FixedClock], unique: str
    ) -> None:
        alerts, clock = service
        ws = f"ws_{unique}"
        closed = f"http://127.0.0.1:{free_port()}/hook"
        settings = AlertSettings.model_validate({"channels": [{"type": "webhook", "url": closed, "secret": SECRET}]})
        await alerts.save_settings(ws, settings.with_channel_ids(), credential_id="test", role="owner")
        await alert_on_decision(kill_switch_on(ws, clock()), alerts=alerts)
        await drain(alerts, clock, rounds=1)

        [alert] = await alerts.log(ws)
        [attempt] = alert["deliveries"][0]["attempts"]
        assert (attempt["outcome"], attempt["error"]) == ("retry", "ConnectError")


class TestSecretsAtRest:
    async def test_channel_urls_and_secrets_are_sealed_in_redis_and_read_back(self, redis_client: Redis) -> None:
        store = RedisAlertSettingsStore(redis_client, SEALER)
        secret, url = "s3cr3t-webhook-signing-key", "https://hooks.example.test/T000/B000/XXXX"
        settings = AlertSettings.model_validate(
            {"channels": [{"id": "hook", "type": "webhook", "url": url, "secret": secret}]}
        )
        await store.save("ws_sealed001", settings, now=START)
        stored = await redis_client.get(settings_key("ws_sealed001"))
        assert isinstance(stored, bytes)
        assert secret.encode() not in stored
        assert b"hooks.example.test" not in stored
        read = await store.get("ws_sealed001")
        assert read is not None
        assert read.settings == settings
        other_key = RedisAlertSettingsStore(redis_client, Sealer(Fernet.generate_key().decode()))
        with pytest.raises(RuntimeError, match="OPSMETER_SECRETS_KEY"):
            await other_key.get("ws_sealed001")
