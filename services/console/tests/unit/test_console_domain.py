import pytest

from opsmeter_console.config import ConsoleSettings
from opsmeter_console.domain import forwardable, parse_session_cookie, same_origin, session_cookie


class TestForwardable:
    @pytest.mark.parametrize(
        "path",
        [
            "v1/workspaces/ws_abc/usage",
            "v1/workspaces/ws_abc/api-keys/k1/rotate",
            "v1/billing/subscription",
            "v1/billing/subscription/change-plan",
            "v1/billing/checkout",
            "v1/billing/portal",
            "v1/public/pricing-models",
        ],
    )
    def test_workspace_billing_and_public_routes_pass(self, path: str) -> None:
        assert forwardable(path)

    @pytest.mark.parametrize(
        "path",
        [
            "v1/admin/workspaces",
            "v1/admin/sql",
            "v1/ingest/llm-request",
            "v1/billing/webhooks/lemonsqueezy",
            "metrics",
            "v1/workspaces/ws_abc/../../admin/sql",
            "v1/workspaces/ws_abc",
        ],
    )
    def test_operator_ingest_and_webhook_routes_do_not(self, path: str) -> None:
        assert not forwardable(path)


class TestSameOrigin:
    def test_no_origin_header_is_a_same_origin_navigation(self) -> None:
        assert same_origin(None, "127.0.0.1:8090")

    def test_matching_origin_passes_and_another_site_does_not(self) -> None:
        assert same_origin("http://127.0.0.1:8090", "127.0.0.1:8090")
        assert not same_origin("https://evil.example", "127.0.0.1:8090")

    def test_without_origin_a_browser_must_say_same_origin(self) -> None:
        assert same_origin(None, "127.0.0.1:8090", "same-origin")
        assert not same_origin(None, "127.0.0.1:8090", "cross-site")
        assert not same_origin(None, "127.0.0.1:8090", "same-site")


class TestSessionCookie:
    def test_the_cookie_carries_the_session_id_then_the_token(self) -> None:
        token = "om_adm_abc123def456_" + "0" * 48
        assert parse_session_cookie(session_cookie("s3ss-10n_id", token)) == ("s3ss-10n_id", token)

    @pytest.mark.parametrize("value", [None, "", "om_adm_abc123def456_00", ".om_adm_x_y", "sid."])
    def test_a_bare_token_or_a_broken_cookie_is_no_session(self, value: str | None) -> None:
        assert parse_session_cookie(value) is None


class TestSettings:
    def test_upstreams_follow_the_stack_ports(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPSMETER_REPORTING_PORT", "18084")
        assert ConsoleSettings().upstreams["reporting"] == "http://127.0.0.1:18084"

    def test_the_cookie_is_secure_in_prod_and_cannot_be_turned_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OPSMETER_ENV", "prod")
        monkeypatch.setenv("OPSMETER_KAFKA_BOOTSTRAP", "kafka:9092")
        monkeypatch.setenv("OPSMETER_OPERATOR_TOKEN_SHA256", "0" * 64)
        assert ConsoleSettings().secure_cookie
        monkeypatch.setenv("OPSMETER_CONSOLE_COOKIE_SECURE", "false")
        with pytest.raises(ValueError, match="COOKIE_SECURE"):
            ConsoleSettings()
