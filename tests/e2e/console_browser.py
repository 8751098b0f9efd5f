"""Helpers of the console's browser tests: the system's Chromium through Playwright, and what a user does."""

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY
from tests.conftest import RunningStack

CHROMIUM = Path(os.environ.get("OPSMETER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("OPSMETER_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / ".data" / "test-artifacts")
)
SCREENSHOTS = ARTIFACTS / "console"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
T = TypeVar("T")


def chromium_or_skip() -> Path:
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed (make install)")
    return CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or "")


def eventually(check: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def usd(amount: str) -> str:
    """The console's money format for amounts of a cent or more: ``$1,234.57``."""
    return f"${Decimal(amount).quantize(Decimal('0.01')):,}"


@dataclass
class Workspace:
    stack: RunningStack
    id: str
    api_key: str
    token: str

    @classmethod
    def create(cls, stack: RunningStack, plan: str = "starter", **limits: int) -> "Workspace":
        if limits:
            from opsmeter_cli.stack import operator_token

            answer = httpx.post(
                f"{stack.url('ingest-gateway')}/v1/admin/workspaces",
                json={"name": "console-test", "plan": plan, **limits},
                headers={"X-Operator-Token": operator_token(stack.config)},
                timeout=30,
            )
            assert answer.status_code == 201, answer.text
            created: dict[str, Any] = answer.json()
            stack.wait_for_plan(created, plan)
        else:
            created = stack.create_workspace(plan)
        return cls(stack, created["workspaceId"], created["apiKey"], created["adminToken"])

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def ingest(self, **overrides: Any) -> httpx.Response:
        body = {**SPEC_EXAMPLE_BODY, "externalRequestId": f"req_{uuid.uuid4().hex}", **overrides}
        return httpx.post(
            f"{self.stack.url('ingest-gateway')}/v1/ingest/llm-request",
            content=json.dumps(body).encode(),
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
            timeout=30,
        )

    def usage(self, **query: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.stack.url('reporting')}/v1/workspaces/{self.id}/usage", params=query, headers=self.auth, timeout=30
        )
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def load_demo(self, events: int = 400, days: int = 14) -> int:
        answer = httpx.post(
            f"{self.stack.url('ingest-gateway')}/v1/ingest/demo",
            json={"events": events, "days": days},
            headers={"X-API-Key": self.api_key},
            timeout=120,
        )
        assert answer.status_code == 202, answer.text
        accepted = int(answer.json()["accepted"])
        eventually(
            lambda: self.usage(dataMode="demo", groupBy="model")["totals"]["requests"] >= accepted,
            "reporting has stored the demo events",
            timeout=60,
        )
        return accepted

    def member_token(self, role: str = "member") -> str:
        answer = httpx.post(
            f"{self.stack.url('ingest-gateway')}/v1/workspaces/{self.id}/admin-tokens",
            json={"role": role, "name": "console test"},
            headers=self.auth,
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["adminToken"])


@dataclass
class Browser:
    """One Chromium for the test session; each test gets a fresh context (its own cookies)."""

    playwright: Any
    browser: Any
    errors: list[str] = field(default_factory=list)

    def page(self, viewport: dict[str, int] = DESKTOP) -> Any:
        context = self.browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("console", lambda m: self.errors.append(_console_error(m)) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        return page


def open_browser() -> Iterator[Browser]:
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield Browser(playwright, browser)
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Any, console: str, token: str) -> None:
    page.goto(f"{console}/")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview").wait_for()


def _console_error(message: Any) -> str:
    """A console error and where it came from (a failed resource's URL), so a rare one names its request."""
    where = (message.location or {}).get("url") or ""
    return f"console {message.type}: {message.text}" + (f" ({where})" if where else "")
