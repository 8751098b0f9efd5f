import random
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Any

import pytest
from pydantic import ValidationError

from opsmeter_alerting.domain import (
    AlertSettings,
    RetryPolicy,
    Schedule,
    last_send_at,
    literal_address,
    next_send_at,
    outcome_of_status,
    period_label,
    plan_required_to_deliver,
    public_settings,
    refusal_of,
    signature,
    verify_signature,
)

BERLIN_9 = Schedule(send_time="09:00", timezone="Europe/Berlin")


class TestDestinationRule:
    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.5", "private"),
            ("172.16.3.4", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("100.127.255.254", "shared (CGNAT)"),
            ("224.0.0.251", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("255.255.255.255", "private"),
            ("192.0.2.10", "private"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "private"),
            ("fc00::1", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "private"),
            ("::127.0.0.1", "reserved"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.5", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:5", "private"),
            ("2002:a00:5::1", "private"),
        ],
    )
    def test_non_public_addresses_are_refused_with_their_kind(self, address: str, reason: str) -> None:
        assert refusal_of(ip_address(address)) == reason

    @pytest.mark.parametrize(
        "address",
        ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
    )
    def test_public_addresses_pass(self, address: str) -> None:
        assert refusal_of(ip_address(address)) is None

    @pytest.mark.parametrize(
        ("host", "address"),
        [
            ("127.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("017700000001", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0x7F000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("0251.0376.0251.0376", "169.254.169.254"),
            ("2852039166", "169.254.169.254"),
            ("[::1]", "::1"),
            ("::ffff:7f00:1", "::ffff:127.0.0.1"),
            ("[fe80::1%eth0]", "fe80::1"),
        ],
    )
    def test_every_literal_form_a_resolver_accepts_is_read_as_its_address(self, host: str, address: str) -> None:
        literal = literal_address(host)
        assert literal == ip_address(address)
        assert literal is not None
        assert refusal_of(literal) is not None

    @pytest.mark.parametrize("host", ["hooks.slack.com", "example.test", "1.2.3.4.5", "08.0.0.1", "0xg.1", "localhost"])
    def test_names_are_not_literals(self, host: str) -> None:
        assert literal_address(host) is None

    def test_the_http_channels_are_named_as_a_validation_error_names_them(self) -> None:
        settings = AlertSettings.model_validate(
            {
                "channels": [
                    {"type": "email", "to": ["ops@example.test"]},
                    {"type": "webhook", "url": "https://a.example.test/hook", "secret": "s" * 16},
                    {"type": "slack", "url": "https://hooks.slack.com/services/T/B/X"},
                ]
            }
        )
        assert settings.http_destinations() == [
            ("channels.1.webhook.url", "https://a.example.test/hook"),
            ("channels.2.slack.url", "https://hooks.slack.com/services/T/B/X"),
        ]


class TestSchedule:
    def test_daily_summary_at_9_berlin_is_8_utc_in_winter_and_7_utc_in_summer(self) -> None:
        # Berlin moves to summer time at 01:00 UTC on Sunday 30 March 2025.
        saturday = datetime(2025, 3, 29, 6, 0, tzinfo=UTC)
        assert next_send_at("daily_summary", BERLIN_9, saturday) == datetime(2025, 3, 29, 8, 0, tzinfo=UTC)
        after_saturday = datetime(2025, 3, 29, 8, 0, tzinfo=UTC)
        assert next_send_at("daily_summary", BERLIN_9, after_saturday) == datetime(2025, 3, 30, 7, 0, tzinfo=UTC)
        assert next_send_at("daily_summary", BERLIN_9, datetime(2025, 3, 30, 7, 0, tzinfo=UTC)) == datetime(
            2025, 3, 31, 7, 0, tzinfo=UTC
        )

    def test_back_to_winter_time_in_october(self) -> None:
        # Berlin leaves summer time at 01:00 UTC on Sunday 26 October 2025.
        assert next_send_at("daily_summary", BERLIN_9, datetime(2025, 10, 25, 12, tzinfo=UTC)) == datetime(
            2025, 10, 26, 8, 0, tzinfo=UTC
        )
        assert next_send_at("daily_summary", BERLIN_9, datetime(2025, 10, 25, 0, tzinfo=UTC)) == datetime(
            2025, 10, 25, 7, 0, tzinfo=UTC
        )

    def test_a_send_time_skipped_by_dst_goes_out_just_after_the_gap(self) -> None:
        schedule = Schedule(send_time="02:30", timezone="Europe/Berlin")
        at = next_send_at("daily_summary", schedule, datetime(2025, 3, 29, 12, tzinfo=UTC))
        assert at == datetime(2025, 3, 30, 1, 30, tzinfo=UTC), "02:30 does not exist that day: 03:30 CEST"

    def test_a_repeated_local_time_sends_once_at_its_first_occurrence(self) -> None:
        schedule = Schedule(send_time="02:30", timezone="Europe/Berlin")
        at = next_send_at("daily_summary", schedule, datetime(2025, 10, 25, 12, tzinfo=UTC))
        assert at == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
        assert next_send_at("daily_summary", schedule, at) == datetime(2025, 10, 27, 1, 30, tzinfo=UTC)

    def test_weekly_goes_out_on_monday(self) -> None:
        wednesday = datetime(2025, 3, 26, 12, tzinfo=UTC)
        assert next_send_at("weekly_summary", BERLIN_9, wednesday) == datetime(2025, 3, 31, 7, 0, tzinfo=UTC)
        assert last_send_at("weekly_summary", BERLIN_9, wednesday) == datetime(2025, 3, 24, 8, 0, tzinfo=UTC)
        assert period_label("weekly_summary", BERLIN_9, datetime(2025, 3, 31, 7, 0, tzinfo=UTC)) == "2025-W14"

    def test_period_is_the_local_date(self) -> None:
        late = datetime(2025, 6, 30, 23, 30, tzinfo=UTC)
        assert period_label("daily_summary", BERLIN_9, late) == "2025-07-01"

    def test_bad_time_and_zone_are_refused(self) -> None:
        with pytest.raises(ValidationError):
            Schedule(send_time="24:00", timezone="UTC")
        with pytest.raises(ValidationError):
            Schedule(send_time="9:00", timezone="UTC")
        with pytest.raises(ValidationError):
            Schedule(send_time="09:00", timezone="Europe/Nowhere")


class TestSettings:
    def test_defaults(self) -> None:
        settings = AlertSettings()
        assert settings.cooldown_seconds == 300
        assert settings.mode_of("budget") == "immediate"
        assert settings.required_plan() is None

    def test_plans_needed(self) -> None:
        assert AlertSettings.model_validate({"modes": {"budget": "daily_summary"}}).required_plan() == "starter"
        assert AlertSettings.model_validate({"weeklyExecutiveReport": True}).required_plan() == "team"

    def test_secrets_are_masked_and_kept_when_omitted(self) -> None:
        body = {
            "channels": [
                {"type": "webhook", "url": "http://h/x", "secret": "s" * 12 + "abcd"},
                {"type": "slack", "url": "https://hooks.slack.test/T/B/xyz9"},
            ]
        }
        stored = AlertSettings.model_validate(body).with_channel_ids()
        shown = public_settings(stored)
        channels: Any = shown["channels"]
        assert channels[0]["secretHint"] == "••••abcd"
        assert "secret" not in channels[0]
        assert "url" not in channels[1]
        again = AlertSettings.model_validate(
            {
                "channels": [
                    {"type": "webhook", "id": "webhook-1", "url": "http://h/y"},
                    {"type": "slack", "id": "slack-2"},
                ]
            }
        ).keeping_secrets_of(stored)
        assert again.channels[0].secret == "s" * 12 + "abcd"  # type: ignore[union-attr]
        assert again.channels[1].url == "https://hooks.slack.test/T/B/xyz9"  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="needs its secret"):
            AlertSettings.model_validate(
                {"channels": [{"type": "webhook", "url": "http://h"}]}
            ).with_channel_ids().keeping_secrets_of(AlertSettings())


class TestBudgetAlertPlan:
    def test_budget_alerts_need_starter(self) -> None:
        assert plan_required_to_deliver("budget", "free") == "starter"
        for plan in ("starter", "pro", "team", "enterprise"):
            assert plan_required_to_deliver("budget", plan) is None, plan

    def test_other_families_go_out_on_free(self) -> None:
        for family in ("unit_cost", "spike", "policy", "system", "summary"):
            assert plan_required_to_deliver(family, "free") is None, family

    def test_a_plan_not_known_yet_delivers(self) -> None:
        assert plan_required_to_deliver("budget", None) is None


class TestDelivery:
    def test_backoff_grows_with_jitter_and_a_cap(self) -> None:
        policy = RetryPolicy(base=timedelta(seconds=2), cap=timedelta(seconds=30))
        rng = random.Random(7)
        delays = [policy.delay(n, rng) for n in range(1, 8)]
        assert timedelta(seconds=1) <= delays[0] <= timedelta(seconds=2)
        assert timedelta(seconds=4) <= delays[2] <= timedelta(seconds=8)
        assert all(d <= timedelta(seconds=30) for d in delays)
        assert len({policy.delay(3, rng) for _ in range(5)}) > 1

    def test_what_is_worth_retrying(self) -> None:
        assert [outcome_of_status(s) for s in (200, 204, 400, 404, 408, 429, 500, 503)] == [
            "delivered",
            "delivered",
            "failed",
            "failed",
            "retry",
            "retry",
            "retry",
            "retry",
        ]

    def test_signature_covers_timestamp_and_body(self) -> None:
        sig = signature("secret", 1_700_000_000, b'{"a":1}')
        assert verify_signature("secret", 1_700_000_000, b'{"a":1}', sig, now=1_700_000_100)
        assert not verify_signature("secret", 1_700_000_000, b'{"a":2}', sig, now=1_700_000_100)
        assert not verify_signature("secret", 1_700_000_000, b'{"a":1}', sig, now=1_700_001_000), "replayed too late"


class TestPlanLimitAlert:
    def test_a_plan_limit_notice_becomes_one_critical_alert_per_period(self) -> None:
        from datetime import UTC, datetime

        from opsmeter_alerting.domain import alert_for_decision
        from opsmeter_contracts.events import PlanLimitReached, PlanLimitReachedPayload

        notice = PlanLimitReached.new(
            "ws_abcdefgh12",
            PlanLimitReachedPayload(
                plan="starter",
                monthly_request_quota=100_000,
                period="2026-11",
                period_end=datetime(2026, 12, 1, tzinfo=UTC),
            ),
        )
        content = alert_for_decision(notice)
        assert content is not None
        assert (content.rule, content.scope, content.severity) == ("plan_limit_reached", "2026-11", "critical")
        assert "LLM calls keep running" in content.title
