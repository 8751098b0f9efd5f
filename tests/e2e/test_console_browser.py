"""The console in a real browser (Playwright driving the system's Chromium) on the whole local stack.

Each test signs in as a user would and checks what the user sees. Screenshots of every page are
kept under .data/test-artifacts/console/ (OPSMETER_TEST_ARTIFACTS moves them).
"""

import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opsmeter_alerting.testing import SmtpReceiver
from opsmeter_cli.main import app as cli
from opsmeter_cli.stack import operator_token
from opsmeter_runtime.lemonsqueezy_double import LemonSqueezyDouble
from tests.conftest import RunningStack
from tests.e2e.console_browser import (
    PHONE,
    Browser,
    Workspace,
    eventually,
    open_browser,
    screenshot,
    sign_in,
    usd,
)
from tests.e2e.test_billing_lemonsqueezy import Billing

WARNING_TOAST = "Budget warning threshold reached"
BANNER = "Telemetry paused. Plan limit reached. Provider calls continue."


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from open_browser()


@pytest.fixture(autouse=True)
def no_console_errors(browser: Browser) -> Iterator[None]:
    browser.errors.clear()
    yield
    assert browser.errors == [], "the browser console showed errors"


@pytest.fixture(scope="module")
def console(stack: RunningStack) -> str:
    return stack.url("console")


@pytest.fixture(scope="module")
def demo(stack: RunningStack) -> Workspace:
    """A Team workspace holding only demo data, as `opsmeter demo` makes it (fewer events)."""
    ws = Workspace.create(stack, "team")
    ws.load_demo(events=400, days=14)
    return ws


class TestSignIn:
    def test_the_console_answers_health_and_readiness(self, console: str) -> None:
        assert httpx.get(f"{console}/healthz").status_code == 200
        ready = httpx.get(f"{console}/readyz")
        assert ready.status_code == 200, ready.text

    def test_sign_in_keeps_the_token_in_an_httponly_cookie_and_sign_out_clears_it(
        self, browser: Browser, console: str, demo: Workspace
    ) -> None:
        page = browser.page()
        page.goto(f"{console}/")
        screenshot(page, "sign-in")
        sign_in(page, console, demo.token)
        cookies = {c["name"]: c for c in page.context.cookies()}
        session = cookies["opsmeter_session"]
        assert (session["httpOnly"], session["sameSite"]) == (True, "Strict")
        assert page.evaluate("document.cookie") == ""
        assert page.evaluate("JSON.stringify(localStorage)") == "{}"
        assert page.get_by_label("Data mode").input_value() == "demo"

        page.get_by_role("button", name="Sign out").click()
        page.get_by_label("Admin token").wait_for()
        assert "opsmeter_session" not in {c["name"] for c in page.context.cookies()}
        page.goto(f"{console}/settings")
        page.get_by_label("Admin token").wait_for()

    def test_a_wrong_token_is_refused_with_a_message(self, browser: Browser, console: str) -> None:
        page = browser.page()
        browser.errors.clear()
        page.goto(f"{console}/")
        page.get_by_label("Admin token").fill("om_adm_nosuchtoken_0123456789abcdef")
        with page.expect_response(re.compile(r"/api/session$")) as answer:
            page.get_by_role("button", name="Sign in").click()
        assert answer.value.status == 401
        page.get_by_role("alert").filter(has_text="not valid").wait_for()
        browser.errors[:] = [e for e in browser.errors if "401" not in e]

    def test_the_proxy_needs_a_session_and_forwards_no_operator_route(self, console: str, demo: Workspace) -> None:
        assert httpx.get(f"{console}/api/reporting/v1/workspaces/{demo.id}/usage").status_code == 401
        cookies = httpx.post(f"{console}/api/session", json={"token": demo.token}, headers={"Origin": console}).cookies
        assert httpx.post(f"{console}/api/gateway/v1/admin/workspaces", cookies=cookies, json={}).status_code == 404
        other = httpx.post(
            f"{console}/api/policy/v1/workspaces/{demo.id}/budgets",
            cookies=cookies,
            headers={"Origin": "https://elsewhere.example"},
        )
        assert other.status_code in (403, 405)


class TestNewUser:
    def test_opsmeter_demo_prints_the_console_url_and_its_token_signs_in(
        self, browser: Browser, stack: RunningStack
    ) -> None:
        env = {
            "OPSMETER_GATEWAY_URL": stack.url("ingest-gateway"),
            "OPSMETER_REPORTING_URL": stack.url("reporting"),
            "OPSMETER_CONSOLE_URL": stack.url("console"),
            "OPSMETER_OPERATOR_TOKEN": operator_token(stack.config),
        }
        result = CliRunner().invoke(cli, ["demo", "--events", "200", "--days", "7"], env=env)
        assert result.exit_code == 0, result.output
        url = re.search(r"Open the console: (\S+)", result.output)
        token = re.search(r"adminToken (om_adm_\S+)", result.output)
        assert url is not None
        assert token is not None
        assert url.group(1) == stack.url("console")
        workspace_id = re.search(r"demo workspace (\S+):", result.output).group(1)  # type: ignore[union-attr]
        ws = Workspace(stack, workspace_id, "", token.group(1))
        eventually(lambda: ws.usage(dataMode="demo")["totals"]["requests"] >= 200, "the demo events are stored", 60)

        page = browser.page()
        sign_in(page, url.group(1), token.group(1))
        assert page.get_by_label("Data mode").input_value() == "demo"
        spend = page.get_by_test_id("kpi-spend").locator(".value").inner_text()
        assert spend.startswith("$")
        assert spend != "$0.00"


class TestOverview:
    def test_the_total_equals_the_usage_report_for_the_same_range(
        self, browser: Browser, console: str, demo: Workspace
    ) -> None:
        page = browser.page()
        sign_in(page, console, demo.token)
        first, last = date.today() - timedelta(days=13), date.today()
        with page.expect_response(lambda r: "/usage?" in r.url and f"from={first.isoformat()}" in r.url) as shown:
            page.get_by_role("button", name="custom", exact=True).click()
            page.get_by_label("From", exact=True).fill(first.isoformat())
            page.get_by_label("To", exact=True).fill(last.isoformat())
        assert shown.value.status == 200
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        expected = demo.usage(
            **{"from": start.isoformat(), "to": end.isoformat(), "groupBy": "day", "dataMode": "demo"}
        )
        assert expected["totals"]["requests"] > 0
        spend = page.get_by_test_id("kpi-spend")
        spend.get_by_text(usd(expected["totals"]["costUsd"]), exact=True).wait_for()
        page.get_by_role("img", name="Cost over time").wait_for()
        page.get_by_role("heading", name="Top endpoints").wait_for()
        time.sleep(0.5)
        screenshot(page, "overview")

    def test_telemetry_sent_while_the_page_is_open_shows_up_without_a_reload(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter")
        page = browser.page()
        sign_in(page, console, ws.token)
        page.get_by_text("No events in this period.").wait_for()
        assert ws.ingest().status_code == 202
        page.get_by_test_id("kpi-requests").get_by_text("1", exact=True).wait_for(timeout=40_000)

    def test_a_period_older_than_the_plans_raw_window_says_so(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "free")
        page = browser.page()
        sign_in(page, console, ws.token)
        page.get_by_text("No events in this period.").wait_for()
        assert page.get_by_test_id("retention-notice").count() == 0, "7 days and the 7 before fit in Free's 14"
        page.get_by_role("button", name="30d", exact=True).click()
        notice = page.get_by_test_id("retention-notice")
        notice.get_by_text("Retention window applied.").wait_for()
        assert "keeps event detail for 14 days" in notice.inner_text()
        screenshot(page, "overview-retention-window")

    def test_budget_burn_names_each_scoped_budget(self, browser: Browser, console: str, stack: RunningStack) -> None:
        ws = Workspace.create(stack, "starter")
        scoped = {"dimension": "model", "value": "gpt-4o-mini", "dailyUsd": 0.5}
        saved = httpx.put(
            f"{stack.url('policy-engine')}/v1/workspaces/{ws.id}/budgets", json={"scoped": [scoped]}, headers=ws.auth
        )
        assert saved.status_code == 200, saved.text
        assert ws.ingest(inputTokens=2_000_000, outputTokens=0).status_code == 202  # $0.30 of gpt-4o-mini
        spend_url = f"{stack.url('policy-engine')}/v1/workspaces/{ws.id}/spend"
        eventually(
            lambda: httpx.get(spend_url, headers=ws.auth).json()["scoped"][0]["currentSpendUsd"] == "0.3",
            "the policy engine has counted the call",
        )
        page = browser.page()
        sign_in(page, console, ws.token)
        row = page.get_by_test_id("scoped-budget")
        row.get_by_text("$0.30 of $0.50").wait_for()
        assert "Model gpt-4o-mini · today (UTC)" in row.inner_text()
        page.get_by_role("meter", name="Model gpt-4o-mini daily budget used").wait_for()
        screenshot(page, "overview-scoped-budget")

    def test_a_scoped_budget_exceeded_under_hard_stop_says_only_its_events_are_refused(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter")
        policy = f"{stack.url('policy-engine')}/v1/workspaces/{ws.id}"
        scoped = {"dimension": "userId", "value": "u_heavy", "dailyUsd": 0.2}
        assert httpx.put(f"{policy}/budgets", json={"scoped": [scoped]}, headers=ws.auth).status_code == 200
        assert httpx.put(f"{policy}/policy", json={"enforcement": "hard_stop"}, headers=ws.auth).status_code == 200
        assert ws.ingest(userId="u_heavy", inputTokens=2_000_000, outputTokens=0).status_code == 202  # $0.30
        eventually(
            lambda: httpx.get(f"{policy}/spend", headers=ws.auth).json()["scoped"][0]["isExceeded"],
            "the policy engine has counted the call",
        )
        page = browser.page()
        sign_in(page, console, ws.token)
        row = page.get_by_test_id("scoped-budget")
        row.get_by_test_id("budget-stop").wait_for()
        assert "refuses this user's real events (402); other events go in" in row.inner_text()
        assert page.get_by_test_id("budget-stop").count() == 1, "no workspace budget is stopping anything"
        screenshot(page, "overview-scoped-hard-stop")

    def test_refused_telemetry_is_shown_by_reason(self, browser: Browser, console: str, stack: RunningStack) -> None:
        ws = Workspace.create(stack, "starter")
        assert ws.ingest().status_code == 202
        assert [ws.ingest(outputTokens=-1).status_code, ws.ingest(status="nope").status_code] == [422, 422]
        eventually(
            lambda: (ws.usage()["rejections"]["total"], ws.usage()["totals"]["requests"]) == (2, 1),
            "the gateway has written its counts and reporting has the accepted event",
            timeout=15,
        )
        page = browser.page()
        sign_in(page, console, ws.token)
        notice = page.get_by_test_id("refused-telemetry")
        notice.get_by_text("2 telemetry events were refused in this period").wait_for()
        assert "(2 invalid; any data mode)" in notice.inner_text()
        screenshot(page, "overview-refused-telemetry")

    def test_the_warning_threshold_set_in_settings_reaches_ingest_and_shows_the_toast(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter")
        page = browser.page()
        sign_in(page, console, ws.token)
        page.get_by_role("link", name="Settings").click()
        page.get_by_label("Daily budget (USD)").fill("10")
        page.get_by_label("Warning threshold (%)").fill("1")
        with page.expect_response(lambda r: r.url.endswith("/budgets") and r.request.method == "PUT") as saved:
            page.get_by_role("button", name="Save budgets").click()
        assert saved.value.status == 200
        page.get_by_role("status").filter(has_text="Saved").wait_for()

        thirty_cents = {"inputTokens": 2_000_000, "outputTokens": 0}
        flagged = eventually(
            lambda: (a := ws.ingest(**thirty_cents).json()).get("budgetWarning") and a,
            "an ingest answer carrying budgetWarning",
            timeout=30,
        )
        assert (flagged["budgetWarning"], flagged["isBudgetWarning"]) == (True, True)
        toast = page.get_by_role("status").filter(has_text=WARNING_TOAST)
        toast.wait_for(timeout=20_000)
        assert "Starter and above include basic budget alerts." in toast.inner_text()
        screenshot(page, "settings-toast")

    def test_a_workspace_at_its_plan_limit_shows_the_banner(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter", monthlyRequestQuota=2)
        answers = [ws.ingest() for _ in range(3)]
        assert answers[-1].status_code == 402
        assert answers[-1].json()["reason"] == "plan_limit_reached"
        page = browser.page()
        sign_in(page, console, ws.token)
        banner = page.get_by_role("alert").filter(has_text=BANNER)
        banner.wait_for()
        assert banner.get_by_text(BANNER, exact=True).is_visible()
        assert banner.get_by_role("link", name="Upgrade plan").is_visible()
        screenshot(page, "overview-plan-limit-banner")


class TestSettings:
    def test_the_change_history_says_who_changed_what(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter")
        page = browser.page()
        sign_in(page, console, ws.token)
        page.get_by_role("link", name="Settings").click()
        page.get_by_label("Daily budget (USD)").fill("12")
        page.get_by_role("button", name="Save budgets").click()
        history = page.get_by_test_id("change-history")
        history.get_by_text("Budgets: daily 12 USD, monthly none, warning at 80 %").wait_for(timeout=30_000)
        assert "owner" in history.inner_text()
        screenshot(page, "settings-change-history")

    def test_a_member_sees_settings_read_only_and_cannot_change_them(
        self, browser: Browser, console: str, demo: Workspace
    ) -> None:
        member = demo.member_token("member")
        page = browser.page()
        sign_in(page, console, member)
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("note").filter(has_text="read-only").wait_for()
        page.get_by_label("Warning threshold (%)").wait_for()
        assert page.get_by_label("Warning threshold (%)").is_disabled()
        assert page.get_by_role("button", name="Save budgets").is_disabled()
        assert page.get_by_role("button", name="Create key").is_disabled()
        put = page.evaluate(
            """async (ws) => (await fetch(`/api/policy/v1/workspaces/${ws}/budgets`, {
                 method: 'PUT', headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({warningThresholdRatio: 0.1})})).status""",
            demo.id,
        )
        assert put == 403
        browser.errors[:] = [e for e in browser.errors if "403" not in e]
        screenshot(page, "settings-member-read-only")

    def test_an_owner_changes_alerts_sends_a_test_and_sees_the_delivery_log(
        self, browser: Browser, console: str, stack: RunningStack, smtp_receiver: SmtpReceiver
    ) -> None:
        ws = Workspace.create(stack, "starter")
        address = f"ops-{ws.id}@example.com"
        page = browser.page()
        sign_in(page, console, ws.token)
        page.get_by_role("link", name="Settings").click()
        page.get_by_label("Budget alerts").select_option("daily_summary")
        page.get_by_label("Timezone").select_option("Europe/Berlin")
        page.get_by_role("button", name="Add email").click()
        page.get_by_label("Email recipients").fill(address)
        with page.expect_response(lambda r: r.url.endswith("/alerts/settings") and r.request.method == "PUT") as put:
            page.get_by_role("button", name="Save alert settings").click()
        assert put.value.status == 200, put.value.text()
        saved = put.value.json()
        assert (saved["modes"]["budget"], saved["schedule"]["timezone"]) == ("daily_summary", "Europe/Berlin")
        page.get_by_role("button", name="Send test").click()
        page.get_by_role("status").filter(has_text="Test alert queued").wait_for()
        eventually(lambda: smtp_receiver.to(address) or None, "the test email arrives", timeout=30)
        page.get_by_role("cell", name="Opsmeter test alert").wait_for(timeout=30_000)
        screenshot(page, "settings-alerts-delivery-log")

    def test_a_free_workspace_sees_its_budget_alert_kept_but_not_sent(
        self, browser: Browser, console: str, stack: RunningStack, smtp_receiver: SmtpReceiver
    ) -> None:
        ws = Workspace.create(stack, "free")
        address = f"free-{ws.id}@example.com"
        page = browser.page()
        sign_in(page, console, ws.token)
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("button", name="Add email").click()
        page.get_by_label("Email recipients").fill(address)
        with page.expect_response(lambda r: r.url.endswith("/alerts/settings") and r.request.method == "PUT") as put:
            page.get_by_role("button", name="Save alert settings").click()
        assert put.value.status == 200, put.value.text()
        budgets = f"{stack.url('policy-engine')}/v1/workspaces/{ws.id}/budgets"
        assert httpx.put(budgets, json={"dailyUsd": 0.0001}, headers=ws.auth).status_code == 200
        assert ws.ingest().status_code == 202  # $0.00022: past the whole daily budget
        page.get_by_role("cell", name="not sent: needs Starter").first.wait_for(timeout=40_000)
        assert smtp_receiver.to(address) == [], "nothing was delivered"
        screenshot(page, "settings-delivery-log-plan-required")

    def test_the_kill_switch_asks_first_and_says_what_observe_mode_means(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter")
        page = browser.page()
        sign_in(page, console, ws.token)
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("button", name="Turn kill switch on").click()
        dialog = page.get_by_role("dialog", name="Confirm kill switch")
        assert "rules are still evaluated" in dialog.inner_text()
        assert "not applied until you turn the kill switch off" in dialog.inner_text()
        page.get_by_role("button", name="Turn on observe mode").click()
        page.get_by_text("on (observe mode)").wait_for()
        eventually(lambda: ws.ingest().json()["policyMode"] == "observe", "ingest answers in observe mode")

    def test_a_new_api_key_is_shown_once_and_can_be_rotated_and_revoked(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter")
        page = browser.page()
        sign_in(page, console, ws.token)
        page.get_by_role("link", name="Settings").click()
        page.get_by_label("New key name").fill("checkout-service")
        page.get_by_role("button", name="Create key").click()
        key = page.get_by_test_id("new-key").inner_text()
        assert key.startswith("om_live_")
        assert Workspace(stack, ws.id, key, ws.token).ingest().status_code == 202
        page.get_by_role("button", name="Done").click()
        page.reload()
        page.get_by_role("cell", name="checkout-service").wait_for()
        assert key not in page.content(), "a key is shown only once"
        row = page.get_by_role("row").filter(has_text="checkout-service")
        row.get_by_role("button", name="Revoke").click()
        row.get_by_text("revoked").wait_for()
        revoked = Workspace(stack, ws.id, key, ws.token)
        eventually(lambda: revoked.ingest().status_code == 401, "the revoked key is refused (gateway cache: 5 s)")

    def test_the_owner_revokes_a_member_token_and_its_session_ends(
        self, browser: Browser, console: str, stack: RunningStack
    ) -> None:
        ws = Workspace.create(stack, "starter")
        owner = browser.page()
        sign_in(owner, console, ws.token)
        owner.get_by_role("link", name="Settings").click()
        owner.get_by_label("Token name").fill("contractor")
        owner.get_by_role("button", name="Issue token").click()
        token = owner.get_by_test_id("new-admin-token").inner_text()
        member = browser.page()
        sign_in(member, console, token)
        member.get_by_role("link", name="Settings").click()
        member.get_by_text("settings are read-only").wait_for()

        owner.reload()
        row = owner.get_by_role("row").filter(has_text="contractor")
        row.get_by_role("button", name="Revoke").click()
        row.get_by_text("revoked").wait_for()
        screenshot(owner, "settings-token-revoked")
        member.get_by_role("link", name="Overview").click()  # its next request meets the ended session
        member.get_by_role("status").filter(has_text="Your session ended").wait_for()
        member.get_by_label("Admin token").wait_for()
        screenshot(member, "sign-in-session-ended")
        browser.errors[:] = [e for e in browser.errors if "401" not in e]


class TestBilling:
    def test_change_plan_shows_pending_until_the_signed_webhook(
        self, browser: Browser, console: str, stack: RunningStack, lemonsqueezy: LemonSqueezyDouble
    ) -> None:
        billing = Billing(stack, lemonsqueezy)
        token = billing.headers["Authorization"].removeprefix("Bearer ")
        page = browser.page()
        sign_in(page, console, token)
        page.get_by_role("link", name="Billing").click()
        page.get_by_test_id("current-plan").filter(has_text="Starter").wait_for()
        assert page.get_by_role("radio", name="Starter").is_checked(), "nothing is offered before the user picks"
        assert page.get_by_role("button", name="Change to Starter").is_disabled()
        page.get_by_role("radio", name="Pro").check()
        with page.expect_response(lambda r: r.url.endswith("/change-plan")) as changed:
            page.get_by_role("button", name="Change to Pro").click()
        assert changed.value.status == 202
        assert changed.value.json()["status"] == "pending_webhook"
        pending = page.get_by_test_id("pending-change")
        pending.wait_for()
        assert "Change to Pro pending" in pending.inner_text()
        screenshot(page, "billing-pending")
        time.sleep(2.5)
        assert pending.is_visible(), "the pending state stays until the webhook confirms"
        assert billing.plan()["planTier"] == "starter"

        assert billing.deliver(billing.delivery()) == 200
        pending.wait_for(state="detached", timeout=20_000)
        page.get_by_test_id("current-plan").filter(has_text="Pro").wait_for(timeout=10_000)  # without a reload
        assert page.get_by_role("row", name=re.compile(r"^Pro .*current")).count() == 1
        screenshot(page, "billing-confirmed")

    def test_a_free_workspace_subscribes_on_the_checkout_page_and_comes_back_to_its_new_plan(
        self, browser: Browser, console: str, stack: RunningStack, lemonsqueezy: LemonSqueezyDouble
    ) -> None:
        created = stack.create_workspace("free")
        page = browser.page()
        sign_in(page, console, created["adminToken"])
        page.get_by_role("link", name="Billing").click()
        page.get_by_test_id("current-plan").filter(has_text="Free").wait_for()
        page.get_by_role("radio", name="Pro").check()
        screenshot(page, "billing-subscribe")
        page.get_by_role("button", name="Subscribe to Pro").click()
        page.wait_for_url(re.compile(r"/checkout/custom/"))  # Lemon Squeezy's page (the double's)
        page.get_by_role("button", name="Pay").click()
        page.wait_for_url(re.compile(r"/billing(\?checkout=done)?$"))  # back; the page drops the query once done
        page.get_by_test_id("current-plan").filter(has_text="Pro").wait_for(timeout=20_000)  # without a reload
        assert page.get_by_role("button", name="Change to Pro").is_disabled()
        screenshot(page, "billing-subscribed")


class TestComparePages:
    def _verified(self, page: Any, console: str) -> date:
        page.goto(f"{console}/compare/langfuse")
        text = page.get_by_text(re.compile(r"^Last verified \d{4}-\d{2}-\d{2}")).inner_text()
        return date.fromisoformat(re.search(r"\d{4}-\d{2}-\d{2}", text).group(0))  # type: ignore[union-attr]

    def test_a_page_verified_31_days_ago_is_stale_and_stays_indexable(self, browser: Browser, console: str) -> None:
        page = browser.page()
        verified = self._verified(page, console)
        at = datetime(verified.year, verified.month, verified.day, 12, tzinfo=UTC) + timedelta(days=31)
        page.clock.set_fixed_time(at)
        page.goto(f"{console}/compare/langfuse")
        page.get_by_test_id("stale-badge").wait_for()
        assert "re-check the vendor's docs" in page.get_by_role("alert").inner_text()
        assert page.locator('meta[name="robots"]').get_attribute("content") == "index,follow"
        assert httpx.get(f"{console}/compare/langfuse").headers["X-Robots-Tag"] == "index, follow"
        assert httpx.get(f"{console}/settings").headers["X-Robots-Tag"] == "noindex, nofollow"
        assert page.get_by_role("link", name="Langfuse docs").get_attribute("href") == "https://langfuse.com/docs"
        screenshot(page, "compare-langfuse-stale")

    def test_a_page_verified_29_days_ago_is_not_stale(self, browser: Browser, console: str) -> None:
        page = browser.page()
        verified = self._verified(page, console)
        at = datetime(verified.year, verified.month, verified.day, 12, tzinfo=UTC) + timedelta(days=29)
        page.clock.set_fixed_time(at)
        page.goto(f"{console}/compare/langfuse")
        page.get_by_text("Last verified").first.wait_for()
        assert page.get_by_test_id("stale-badge").count() == 0

    def test_the_index_and_the_spike_guide_are_public(self, browser: Browser, console: str) -> None:
        page = browser.page()
        page.goto(f"{console}/compare")
        for vendor in ("Langfuse", "Helicone", "LiteLLM"):
            page.get_by_role("link", name=f"Opsmeter vs {vendor}").wait_for()
        screenshot(page, "compare-index")
        page.goto(f"{console}/guides/ai-cost-spike")
        for step in ("1. Detect", "2. Investigate", "3. Contain", "4. Review"):
            page.get_by_role("heading", name=step).wait_for()
        screenshot(page, "guide-ai-cost-spike")


CLIPPED_TABLES = """() => [...document.querySelectorAll('main table')].flatMap((table) => {
  let box = table.parentElement;
  while (box && getComputedStyle(box).overflowX === 'visible') box = box.parentElement;
  if (!box || table.scrollWidth <= box.clientWidth) return [];
  return ['auto', 'scroll'].includes(getComputedStyle(box).overflowX) ? [] : [table.innerText.slice(0, 40)];
})"""
"""Tables wider than the box that clips them, where that box does not scroll: content the user cannot reach."""


class TestEveryPage:
    PAGES = (
        ("overview", "Overview", "Cost over time"),
        ("spike", "Investigate Spike", "Why the cost changed: volume × unit cost × mix"),
        ("reports", "Reports", "Weekly executive report"),
        ("settings", "Settings", "Budgets"),
        ("billing", "Billing", "Plan"),
        ("onboarding", "Onboarding", "First-ingest checklist"),
    )

    @pytest.mark.parametrize("width", ["desktop", "phone"])
    def test_each_page_shows_the_demo_workspace(
        self, browser: Browser, console: str, demo: Workspace, width: str
    ) -> None:
        page = browser.page(PHONE if width == "phone" else {"width": 1280, "height": 900})
        sign_in(page, console, demo.token)
        for path, heading, section in self.PAGES:
            page.goto(f"{console}/{path}")
            page.get_by_role("heading", name=heading, exact=True).wait_for()
            page.get_by_role("heading", name=section).first.wait_for()
            eventually(lambda: page.locator(".state.loading").count() == 0, f"{path} finished loading", timeout=20)
            time.sleep(0.4)
            screenshot(page, f"{path}-{width}")
            if path == "onboarding":  # demo data only: no score yet, rather than a failing 0 / 100
                assert page.get_by_test_id("quality-score").inner_text().startswith("—")
            if width == "phone":
                width_px = page.evaluate("document.documentElement.scrollWidth")
                assert width_px <= PHONE["width"] + 1, f"{path} scrolls sideways at phone width"
                assert page.evaluate(CLIPPED_TABLES) == [], f"{path} cuts off a table the user cannot scroll to"

    def test_the_overview_top_lists_show_every_column_on_a_phone(
        self, browser: Browser, console: str, demo: Workspace
    ) -> None:
        page = browser.page(PHONE)
        sign_in(page, console, demo.token)
        page.goto(f"{console}/overview")
        for title in ("Top endpoints", "Top users", "Top prompt versions", "Top models"):
            card = page.locator(".card", has=page.get_by_role("heading", name=title, exact=True))
            card.locator("tbody tr").first.wait_for()
            box = card.bounding_box()
            requests = card.get_by_role("columnheader", name="Requests").bounding_box()
            assert box is not None
            assert requests is not None
            assert requests["x"] + requests["width"] <= box["x"] + box["width"], f"{title}: Requests is cut off"

    def test_the_weekly_report_compares_spend_requests_and_tokens_with_the_week_before(
        self, browser: Browser, console: str, demo: Workspace
    ) -> None:
        page = browser.page()
        sign_in(page, console, demo.token)
        page.goto(f"{console}/reports")
        for kpi in ("weekly-spend", "weekly-requests", "weekly-tokens"):
            delta = page.get_by_test_id(kpi).locator(".delta")
            delta.wait_for()
            said = delta.inner_text()
            assert re.fullmatch(r"(?:[+−][\d,]+|0) % vs baseline|no change|new vs baseline period", said), kpi

    def test_reports_download_the_board_pack_pdf_and_csv(self, browser: Browser, console: str, demo: Workspace) -> None:
        page = browser.page()
        sign_in(page, console, demo.token)
        page.goto(f"{console}/reports")
        page.get_by_text(re.compile(r"^\$[\d,.]+ over [\d.KM]+ requests")).wait_for()
        with page.expect_download() as pdf:
            page.get_by_role("link", name="Download PDF").click()
        assert pdf.value.suggested_filename.endswith(".pdf")
        assert Path(pdf.value.path()).read_bytes()[:5] == b"%PDF-"
        with page.expect_download() as csv:
            page.get_by_role("link", name="Download CSV").click()
        assert Path(csv.value.path()).read_text(encoding="utf-8").startswith("section,")

    def test_investigate_spike_drills_down_to_raw_events(self, browser: Browser, console: str, demo: Workspace) -> None:
        page = browser.page()
        sign_in(page, console, demo.token)
        page.goto(f"{console}/spike")
        page.get_by_role("button", name="7d", exact=True).click()
        page.get_by_role("heading", name="Endpoint", exact=True).wait_for()
        page.get_by_role("img", name="Cost change decomposition").wait_for()
        endpoints = page.locator(".card", has=page.get_by_role("heading", name="Endpoint", exact=True))
        first = endpoints.locator("button.link").first
        key = first.inner_text()
        first.click()
        page.get_by_role("heading", name=f"Raw events: Endpoint = {key}").wait_for()
        events = page.get_by_test_id("raw-events").first
        events.wait_for()
        assert events.locator("tbody tr").count() > 0
        screenshot(page, "spike-drill-down")
