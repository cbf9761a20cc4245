"""End-to-end: the market dashboard and the order-tracking page in headless Chromium against a
real hub (the aiohttp app served on a loopback port in this process, Socket.IO included).

Every test gets fresh browser contexts (tests/helpers/browser.py): a request to any host but
127.0.0.1/localhost is aborted and fails the test, and so does any JavaScript console error or
uncaught page error, unless the test allows a line explicitly and says why.

`UPDATE_SCREENSHOTS=1 python -m pytest tests/pages/test_pages.py -k screenshots` refreshes the screenshots in
docs/screenshots/ (otherwise they go to the test's tmp dir); quantize them before committing (docs/testing.md).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Route, expect

from tests.helpers.api import Account, make_market, make_product, place_order, set_order_status, sign_up
from tests.helpers.browser import GuardedContexts, assert_each_once, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

LIVE_SECONDS = 2.0  # the bound for a change to show up on a page
LIVE_MS = int(LIVE_SECONDS * 1000)
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


async def placed(hub: TestClient, customer: Account, market_id: str, lines: list[tuple[str, int]],
                 **fields: Any) -> dict[str, Any]:  # fmt: skip
    response = await place_order(hub, customer, market_id, lines, **fields)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def moved(hub: TestClient, admin: Account, order: dict[str, Any], *statuses: str) -> dict[str, Any]:
    for status in statuses:
        response = await set_order_status(hub, admin, order["id"], status)
        assert response.status == 200, await response.text()
        order = dict(await response.json())
    return order


def row(page: Page, order_id: str) -> Any:
    return page.locator(f'[data-testid="order-row"][data-order-id="{order_id}"]')


def order_item(page: Page, order_id: str) -> Any:
    return page.locator(f'[data-testid="order-item"][data-order-id="{order_id}"]')


async def test_order_moves_live_from_dashboard_to_tracking(hub: TestClient, base_url: str,
                                                           pages: GuardedContexts) -> None:  # fmt: skip
    admin = await sign_up(hub, "market_admin")
    market = await make_market(hub, admin)
    product = await make_product(hub, admin, market["id"], price_cents=2500, stock=50)
    customer = await sign_up(hub, "customer")
    dashboard, track = await pages.new_page(), await pages.new_page()
    await sign_in(dashboard, base_url, "/dashboard", admin)
    await sign_in(track, base_url, "/track", customer)
    orders_total = dashboard.get_by_test_id("stat-orders-total")
    revenue = dashboard.get_by_test_id("stat-revenue")
    await expect(orders_total).to_have_text("0")
    revenue_before = await revenue.text_content()

    started = time.monotonic()
    order = await placed(hub, customer, market["id"], [(product["id"], 3)])
    await expect(row(dashboard, order["id"])).to_have_attribute("data-status", "pending", timeout=LIVE_MS)
    await expect(orders_total).to_have_text("1", timeout=LIVE_MS)
    await expect(revenue).not_to_have_text(revenue_before or "", timeout=LIVE_MS)
    assert time.monotonic() - started <= LIVE_SECONDS
    await expect(revenue).to_have_text(re.compile(r"UAH\s75\.00"))  # three at 25.00, in the market's currency
    await expect(order_item(track, order["id"])).to_have_attribute("data-status", "pending", timeout=LIVE_MS)
    await order_item(track, order["id"]).click()
    await expect(track.get_by_test_id("current-status")).to_have_attribute("data-status", "pending")

    started = time.monotonic()
    await row(dashboard, order["id"]).get_by_test_id("action-confirmed").click()
    await expect(track.get_by_test_id("current-status")).to_have_attribute("data-status", "confirmed", timeout=LIVE_MS)
    assert time.monotonic() - started <= LIVE_SECONDS
    await expect(row(dashboard, order["id"])).to_have_attribute("data-status", "confirmed")
    await expect(row(dashboard, order["id"]).get_by_test_id("action-preparing")).to_be_visible()
    await expect(row(dashboard, order["id"]).get_by_test_id("row-error")).to_be_hidden()
    entries = track.get_by_test_id("timeline-entry")
    await expect(entries).to_have_count(2)
    assert [await entry.get_attribute("data-status") for entry in await entries.all()] == ["pending", "confirmed"]
    await expect(track.get_by_test_id("cancel-order")).to_be_hidden()  # a customer cancels only while pending
    await expect(dashboard.locator('[data-testid="stat-by-status"] [data-status="confirmed"]')).to_contain_text(
        "1", timeout=LIVE_MS
    )
    await assert_each_once(dashboard, "order-row", [order["id"]])
    await assert_each_once(track, "order-item", [order["id"]])


async def test_dashboard_shows_every_order_once_after_losing_its_connection(
    hub: TestClient, base_url: str, pages: GuardedContexts
) -> None:
    # While the browser is offline its reconnect attempts fail, and Chromium logs each failed
    # WebSocket/polling attempt as a console error: those lines, and only those, are expected here.
    pages.allow_console(r"net::ERR_INTERNET_DISCONNECTED", "the test takes the browser offline on purpose")
    admin = await sign_up(hub, "market_admin")
    market = await make_market(hub, admin)
    product = await make_product(hub, admin, market["id"], stock=100)
    customer = await sign_up(hub, "customer")
    dashboard = await pages.new_page()
    await sign_in(dashboard, base_url, "/dashboard", admin)
    first = await placed(hub, customer, market["id"], [(product["id"], 1)])
    await expect(row(dashboard, first["id"])).to_have_count(1, timeout=LIVE_MS)

    await dashboard.context.set_offline(True)
    connection = dashboard.get_by_test_id("conn-status")
    await expect(connection).to_have_attribute("data-state", re.compile("offline|reconnecting"), timeout=5_000)
    missed = [await placed(hub, customer, market["id"], [(product["id"], n)]) for n in (1, 2, 3)]
    await moved(hub, admin, first, "confirmed")
    await dashboard.wait_for_timeout(300)  # let the page try (and fail) to reach the hub meanwhile
    await expect(dashboard.get_by_test_id("order-row")).to_have_count(1)

    reloads: list[str] = []
    dashboard.on("request", lambda request: reloads.append(request.url) if "/api/v1/orders" in request.url else None)
    await dashboard.context.set_offline(False)
    await expect(connection).to_have_attribute("data-state", "connected", timeout=15_000)
    await expect(row(dashboard, first["id"])).to_have_attribute("data-status", "confirmed", timeout=LIVE_MS)
    await expect(dashboard.get_by_test_id("stat-orders-total")).to_have_text("4", timeout=LIVE_MS)
    # One more live order after the recovery: anything replayed twice would have arrived before it.
    last = await placed(hub, customer, market["id"], [(product["id"], 1)])
    await expect(row(dashboard, last["id"])).to_have_count(1, timeout=LIVE_MS)
    await assert_each_once(dashboard, "order-row", [first["id"], *(order["id"] for order in missed), last["id"]])
    # The gap was filled by the events replayed on reconnect (`auth.since`), not by a REST reload.
    assert reloads == [], reloads
    rendered = [await r.get_attribute("data-order-id") for r in await dashboard.get_by_test_id("order-row").all()]
    assert rendered == [last["id"], *(order["id"] for order in reversed(missed)), first["id"]]  # newest first


async def test_pages_follow_the_ukrainian_locale(hub: TestClient, base_url: str, pages: GuardedContexts) -> None:
    admin = await sign_up(hub, "market_admin", locale="ua")
    market = await make_market(hub, admin)
    product = await make_product(hub, admin, market["id"], price_cents=4250)
    customer = await sign_up(hub, "customer", locale="ua")
    order = await placed(hub, customer, market["id"], [(product["id"], 2)])
    # The browser itself speaks English: the language comes from the user's `locale`.
    track = await pages.new_page(locale="en-US")
    await track.goto(f"{base_url}/track")
    await expect(track.get_by_test_id("login-submit")).to_have_text("Sign in")
    await sign_in(track, base_url, "/track", customer)
    await expect(track.locator("html")).to_have_attribute("lang", "uk")
    await expect(track.get_by_role("heading", name="Мої замовлення", exact=True)).to_be_visible()
    await expect(track.get_by_test_id("conn-status")).to_have_text("Підключено")
    await expect(track.get_by_test_id("sign-out")).to_have_text("Вийти")
    await order_item(track, order["id"]).click()
    await expect(track.get_by_test_id("current-status")).to_have_text("Очікує")
    await expect(track.get_by_test_id("cancel-order")).to_have_text("Скасувати замовлення")
    await expect(track.locator("#detail-total")).to_have_text(re.compile(r"85,00\s*(грн|₴)"))

    dashboard = await pages.new_page(locale="en-US")
    await sign_in(dashboard, base_url, "/dashboard", admin)
    await expect(dashboard.locator("#feed-title")).to_have_text("Замовлення наживо")
    await expect(row(dashboard, order["id"]).get_by_test_id("action-confirmed")).to_have_text("Підтвердити")
    await expect(row(dashboard, order["id"]).get_by_test_id("row-status")).to_have_text("Очікує")

    # A stale screen: someone else confirms the order just before this click's PATCH reaches the hub.
    # The hub answers 409 and Chromium logs that response as a console error: expected here, once.
    pages.allow_console(r"status of 409 \(Conflict\)", "the test provokes a stale-version conflict")

    async def confirm_elsewhere_first(route: Route) -> None:
        await moved(hub, admin, order, "confirmed")
        await route.continue_()

    await dashboard.route(f"**/api/v1/orders/{order['id']}/status", confirm_elsewhere_first, times=1)
    await row(dashboard, order["id"]).get_by_test_id("action-confirmed").click()
    error = row(dashboard, order["id"]).get_by_test_id("row-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text(re.compile("Замовлення тим часом змінили|Цей перехід уже неможливий"))
    await expect(row(dashboard, order["id"])).to_have_attribute("data-status", "confirmed")
    await expect(row(dashboard, order["id"]).get_by_test_id("action-preparing")).to_have_text("Готувати")


async def test_the_guard_catches_console_errors_and_external_requests(base_url: str, pages: GuardedContexts) -> None:
    """The checks every browser test ends with can fail: a console error, an uncaught error and a
    request to another host are each caught."""
    page = await pages.new_page()
    await page.goto(f"{base_url}/")
    await expect(page.get_by_test_id("link-dashboard")).to_be_visible()
    async with page.expect_console_message(lambda m: m.type == "error"), page.expect_event("pageerror"):
        await page.evaluate("() => { console.error('boom'); setTimeout(() => { throw new Error('bang'); }); }")
    caught = pages.take_console_errors()
    assert any("boom" in line for line in caught), caught
    assert any("bang" in line for line in caught), caught
    with pytest.raises(PlaywrightError):
        await page.goto("http://example.com/")
    assert pages.external_requests == ["http://example.com/"]
    pages.external_requests.clear()
    pages.take_console_errors()  # the aborted navigation's own line, provoked on purpose


async def test_screenshots_of_a_market_with_orders_in_several_states(
    hub: TestClient, base_url: str, pages: GuardedContexts, tmp_path: Path
) -> None:
    """A realistic scene on a desktop and a phone-sized screen: every state is shown, the status
    filter works, nothing overflows sideways on the phone, and the landing page links both pages."""
    out = SCREENSHOT_DIR if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    admin = await sign_up(hub, "market_admin", name="Olena")
    market = await make_market(hub, admin, name="Podil Farmers' Market",
                               delivery_options=["pickup", "delivery"])  # fmt: skip
    apples = await make_product(hub, admin, market["id"], name="Apples, 1 kg", price_cents=4500, stock=200)
    honey = await make_product(hub, admin, market["id"], name="Buckwheat honey", price_cents=18000, stock=50)
    cheese = await make_product(hub, admin, market["id"], name="Goat cheese", price_cents=12000, stock=50)
    bread = await make_product(hub, admin, market["id"], name="Rye bread", price_cents=3800, stock=100)
    customer = await sign_up(hub, "customer", name="Taras")
    delivery = {"delivery_option": "delivery", "delivery_address": "12 Khreshchatyk St, Kyiv"}
    delivered = await placed(hub, customer, market["id"], [(honey["id"], 1), (bread["id"], 2)], **delivery)
    delivered = await moved(hub, admin, delivered, "confirmed", "preparing", "ready", "out_for_delivery", "delivered")
    cancelled = await moved(hub, admin, await placed(hub, customer, market["id"], [(cheese["id"], 1)]), "cancelled")
    ready = await moved(hub, admin, await placed(hub, customer, market["id"], [(apples["id"], 3)]),
                        "confirmed", "preparing", "ready")  # fmt: skip
    preparing = await placed(hub, customer, market["id"], [(cheese["id"], 2), (apples["id"], 1)], **delivery)
    preparing = await moved(hub, admin, preparing, "confirmed", "preparing")
    confirmed = await moved(hub, admin, await placed(hub, customer, market["id"], [(bread["id"], 1)]), "confirmed")
    pending = await placed(hub, customer, market["id"], [(honey["id"], 2), (apples["id"], 2), (bread["id"], 1)])
    scene = [pending, confirmed, preparing, ready, cancelled, delivered]  # newest first

    dashboard = await pages.new_page(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/Kyiv")
    await sign_in(dashboard, base_url, "/dashboard", admin)
    for order in scene:
        await expect(row(dashboard, order["id"])).to_have_attribute("data-status", order["status"])
    await expect(dashboard.get_by_test_id("stat-orders-total")).to_have_text("6")
    await expect(dashboard.locator('[data-testid="chart"] rect').first).to_be_attached()
    await dashboard.get_by_test_id("status-filter").select_option("pending")
    await expect(dashboard.locator('[data-testid="order-row"]:visible')).to_have_count(1)
    await dashboard.get_by_test_id("status-filter").select_option("")
    await expect(dashboard.locator('[data-testid="order-row"]:visible')).to_have_count(len(scene))
    await dashboard.screenshot(path=out / "dashboard.png", full_page=True)

    track = await pages.new_page(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/Kyiv")
    await sign_in(track, base_url, "/track", customer)
    await assert_each_once(track, "order-item", [order["id"] for order in scene])
    await order_item(track, delivered["id"]).click()
    steps = ["pending", "confirmed", "preparing", "ready", "out_for_delivery", "delivered"]
    await expect(track.get_by_test_id("timeline-entry")).to_have_count(len(steps))
    assert [await e.get_attribute("data-status") for e in await track.get_by_test_id("timeline-entry").all()] == steps
    await track.screenshot(path=out / "track.png", full_page=True)

    phone = {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2,
             "locale": "en-GB", "timezone_id": "Europe/Kyiv"}  # fmt: skip
    for path, account, name in (("/dashboard", admin, "dashboard-phone.png"), ("/track", customer, "track-phone.png")):
        page = await pages.new_page(**phone)
        await sign_in(page, base_url, path, account)
        if path == "/track":
            await order_item(page, pending["id"]).click()
            await expect(page.get_by_test_id("cancel-order")).to_be_visible()
        else:
            await expect(page.get_by_test_id("order-row")).to_have_count(len(scene))
        overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone screen"
        await page.screenshot(path=out / name)  # the first screenful

    landing = await pages.new_page(**phone)
    await landing.goto(f"{base_url}/")
    await landing.get_by_test_id("link-track").click()
    await expect(landing).to_have_url(f"{base_url}/track")
    await landing.go_back()
    await landing.get_by_test_id("link-dashboard").click()
    await expect(landing).to_have_url(f"{base_url}/dashboard")
