"""End-to-end: the storefront (/shop) and the dashboard that runs a market, in headless Chromium
against a real hub (fixtures and guards of tests/test_pages.py: any console error or request to
another host fails a test unless it is allowed explicitly, with the reason).

`UPDATE_SCREENSHOTS=1 python -m pytest tests/test_shop_pages.py -k products_tab` refreshes
docs/screenshots/shop.png and products-tab.png (otherwise they go to the test's tmp dir).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, Route, expect

from tests.browser import GuardedContexts
from tests.conftest import PASSWORD, Account, make_market, make_product, place_order, sign_up, unique_email
from tests.conftest import sign_in as api_sign_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

LIVE_MS = 1000  # the bound for a stock change to reach an open storefront
SCREENSHOT_DIR = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def card(page: Page, product_id: str) -> Any:
    return page.locator(f'[data-testid="product-card"][data-product-id="{product_id}"]')


def line(page: Page, product_id: str) -> Any:
    return page.locator(f'[data-testid="cart-line"][data-product-id="{product_id}"]')


async def open_market(page: Page, base_url: str, market: dict[str, Any]) -> None:
    await page.goto(f"{base_url}/shop")
    await page.get_by_test_id("market-search").fill(market["name"])
    await (
        page.locator(f'[data-testid="market-card"][data-market-id="{market["id"]}"]')
        .get_by_test_id("open-market")
        .click()
    )
    await expect(page.get_by_test_id("market-title")).to_have_text(market["name"])
    await expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=10_000)


async def sign_in_on_shop(page: Page, account: Account) -> None:
    await page.get_by_test_id("shop-sign-in").click()
    dialog = page.get_by_test_id("account-dialog")
    await dialog.get_by_test_id("login-email").fill(account.email)
    await dialog.get_by_test_id("login-password").fill(PASSWORD)
    await dialog.get_by_test_id("login-submit").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_test_id("sign-out")).to_be_visible()


async def orders_of(hub: TestClient, customer: Account) -> list[dict[str, Any]]:
    response = await hub.get("/api/v1/orders", headers=customer.headers)
    assert response.status == 200, await response.text()
    return list(await response.json())


async def test_register_order_and_track_while_another_customer_sees_stock_move(
    hub: TestClient, base_url: str, pages: GuardedContexts
) -> None:
    admin = await sign_up(hub, "market_admin")
    market = await make_market(hub, admin, delivery_options=["pickup", "delivery"])
    apples = await make_product(hub, admin, market["id"], name="Apples", category="Fruit", price_cents=2500, stock=6)
    honey = await make_product(hub, admin, market["id"], name="Honey", category="Honey", price_cents=18000, stock=3)
    first, second = await pages.new_page(), await pages.new_page()
    await open_market(second, base_url, market)
    await expect(card(second, apples["id"]).get_by_test_id("product-stock")).to_have_text("In stock")
    await expect(card(second, honey["id"]).get_by_test_id("product-stock")).to_have_text("3 left")

    # The first customer fills a cart, then registers in the dialog when placing the order.
    await open_market(first, base_url, market)
    await first.get_by_test_id("category-filter").select_option("Fruit")
    await expect(card(first, honey["id"])).to_be_hidden()
    await card(first, apples["id"]).get_by_test_id("add-to-cart").click()
    await card(first, apples["id"]).get_by_test_id("add-to-cart").click()
    await first.get_by_test_id("category-filter").select_option("")
    await card(first, honey["id"]).get_by_test_id("add-to-cart").click()
    await expect(first.get_by_test_id("cart-total")).to_have_text(re.compile(r"230\.00"))
    await first.get_by_test_id("delivery_option-delivery").check()
    await first.get_by_test_id("checkout-address").fill("12 Khreshchatyk St, Kyiv")
    await first.get_by_test_id("checkout-phone").fill("+380 44 123 4567")
    await first.get_by_test_id("checkout-notes").fill("Ring twice")
    await first.get_by_test_id("place-order").click()
    dialog = first.get_by_test_id("account-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_test_id("tab-register").click()
    email = unique_email("shopper")
    await dialog.get_by_test_id("register-name").fill("Taras Shevchenko")
    await dialog.get_by_test_id("register-email").fill(email)
    await dialog.get_by_test_id("register-password").fill(PASSWORD)
    await dialog.get_by_test_id("register-confirm").fill(PASSWORD)
    is_placement = lambda r: r.url.endswith("/api/v1/orders") and r.request.method == "POST"  # noqa: E731
    async with first.expect_response(is_placement) as placed:
        await dialog.get_by_test_id("register-submit").click()
    response = await placed.value
    ordered_at = time.monotonic()
    assert response.status == 201

    # The other storefront shows the stock drop within 1 s.
    await expect(card(second, apples["id"]).get_by_test_id("product-stock")).to_have_text("4 left", timeout=LIVE_MS)
    await expect(card(second, honey["id"]).get_by_test_id("product-stock")).to_have_text("2 left", timeout=LIVE_MS)
    assert time.monotonic() - ordered_at <= LIVE_MS / 1000 + 0.2  # expect()'s own polling slack

    # Straight to /track, signed in, showing the new order pending.
    [order] = await orders_of(hub, await api_sign_in(hub, email))
    await expect(first).to_have_url(re.compile(rf"/track\?order={order['id']}$"))
    await expect(first.get_by_test_id("current-status")).to_have_attribute("data-status", "pending", timeout=10_000)
    assert order["customer"] == {"name": "Taras Shevchenko", "phone": "+380 44 123 4567"}
    assert order["delivery_address"] == "12 Khreshchatyk St, Kyiv" and order["notes"] == "Ring twice"

    # Someone takes the last honey: sold out at once, and it cannot be added.
    buyer = await sign_up(hub, "customer")
    response = await place_order(hub, buyer, market["id"], [(honey["id"], 2)])
    assert response.status == 201, await response.text()
    honey_card = card(second, honey["id"])
    await expect(honey_card.get_by_test_id("product-stock")).to_have_text("Sold out", timeout=LIVE_MS)
    await expect(honey_card.get_by_test_id("add-to-cart")).to_be_disabled()

    # A checkout asking for more than is left (taken just before it reached the hub) gets the per-line message.
    pages.allow_console(r"status of 409 \(Conflict\)", "the test makes a checkout ask for more than is left")
    await sign_in_on_shop(second, buyer)
    for _ in range(4):
        await card(second, apples["id"]).get_by_test_id("add-to-cart").click()
    await expect(card(second, apples["id"]).get_by_test_id("add-to-cart")).to_be_disabled()  # the cart holds all 4

    async def someone_buys_first(route: Route) -> None:
        taken = await place_order(hub, buyer, market["id"], [(apples["id"], 3)])
        assert taken.status == 201, await taken.text()
        await route.continue_()

    await second.route("**/api/v1/orders", someone_buys_first, times=1)
    await second.get_by_test_id("place-order").click()
    await expect(line(second, apples["id"]).get_by_test_id("line-error")).to_have_text("Only 1 left (you asked for 4).")
    await expect(second.get_by_test_id("checkout-error")).to_be_visible()
    assert len(await orders_of(hub, buyer)) == 2  # nothing placed by the refused checkout
