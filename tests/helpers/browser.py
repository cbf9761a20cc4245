"""Helpers for the end-to-end page tests (tests/pages/test_pages.py): headless Debian Chromium driven by
Playwright, browser contexts that refuse every request leaving the machine and record every
JavaScript console error, and the sign-in steps the pages share.

The browser is never downloaded: CI installs Debian's `chromium` (.ci/run); without it the
browser tests skip and say why.

Fixtures (re-exported by tests/conftest.py for every page test module): `browser` (one Chromium per
module), `hub` (the app on a loopback port), `base_url`, `pages` (GuardedContexts that fail the test
on a console error or a request to another host).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    WebSocket,
    async_playwright,
    expect,
)

from tests.helpers.api import PASSWORD, Account

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Schemes that never reach the network (the pages' `<link rel="icon" href="data:,">`).
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})


def _leaves_machine(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in LOCAL_SCHEMES and parts.hostname not in LOCAL_HOSTS


@dataclass
class Allowance:
    """Console lines a test provokes on purpose (e.g. a deliberate outage), with the reason."""

    pattern: re.Pattern[str]
    why: str


@dataclass
class GuardedContexts:
    """Browser contexts for one test. Every request to a host other than 127.0.0.1/localhost is
    aborted and recorded; every console error and uncaught page error is recorded. `problems()`
    lists both, minus the console lines the test allowed explicitly."""

    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    allowances: list[Allowance] = field(default_factory=list)

    async def new_page(self, **context_options: Any) -> Page:
        context = await self.browser.new_context(**context_options)
        self.contexts.append(context)
        await context.route("**/*", self._route)
        page = await context.new_page()
        self._watch(page)
        return page

    def allow_console(self, pattern: str, why: str) -> None:
        self.allowances.append(Allowance(re.compile(pattern), why))

    def take_console_errors(self) -> list[str]:
        errors, self.console_errors = self.console_errors, []
        return errors

    def problems(self) -> list[str]:
        unexpected = [line for line in self.console_errors if not self._allowed(line)]
        return [*(f"console error: {line}" for line in unexpected),
                *(f"external request: {url}" for url in self.external_requests)]  # fmt: skip

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()
        self.contexts.clear()

    def _allowed(self, line: str) -> bool:
        return any(allowance.pattern.search(line) for allowance in self.allowances)

    async def _route(self, route: Route) -> None:
        url = route.request.url
        if _leaves_machine(url):
            self.external_requests.append(url)
            await route.abort("blockedbyclient")
        else:
            await route.continue_()

    def _watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"{page.url}: uncaught {error}"))
        page.on("websocket", self._websocket)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.location.get('url', '')}: {message.text}")

    def _websocket(self, socket: WebSocket) -> None:
        # WebSockets bypass context.route: checked here instead.
        if _leaves_machine(socket.url.replace("ws", "http", 1)):
            self.external_requests.append(socket.url)


async def sign_in(page: Page, base_url: str, path: str, account: Account) -> None:
    """Open `path`, sign in through the form and wait until the live connection is up."""
    await page.goto(base_url + path)
    await page.get_by_test_id("login-email").fill(account.email)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=10_000)


async def assert_each_once(page: Page, testid: str, order_ids: Iterable[str]) -> None:
    """Every order is rendered exactly once (`data-testid` rows keyed by data-order-id), and no
    other order is."""
    ids = list(order_ids)
    rows = page.get_by_test_id(testid)
    await expect(rows).to_have_count(len(ids))
    for order_id in ids:
        await expect(page.locator(f'[data-testid="{testid}"][data-order-id="{order_id}"]')).to_have_count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (Debian package `chromium`; .ci/run installs it): browser tests skipped"
        print(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def hub(app: web.Application) -> AsyncIterator[TestClient]:
    """The hub on a real loopback port; the browser and the test's REST calls both use it."""
    client: TestClient = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
def base_url(hub: TestClient) -> str:
    return f"http://127.0.0.1:{hub.port}"


@pytest_asyncio.fixture(loop_scope="module")
async def pages(browser: Browser) -> AsyncIterator[GuardedContexts]:
    guard = GuardedContexts(browser)
    yield guard
    await guard.close()
    problems = guard.problems()
    assert not problems, "\n".join(problems)
