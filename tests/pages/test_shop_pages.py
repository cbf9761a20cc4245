"""End-to-end: the storefront (/shop) and the dashboard that runs a market, in headless Chromium
against a real hub (fixtures and guards of tests/pages/test_pages.py: any console error or request to
another host fails a test unless it is allowed explicitly, with the reason).

`UPDATE_SCREENSHOTS=1 python -m pytest tests/pages/test_shop_pages.py -k products_tab` refreshes
docs/screenshots/shop.png and products-tab.png (otherwise they go to the test's tmp dir).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import Page, Route, expect

from tests.helpers.api import PASSWORD, Account, make_market, make_product, place_order, sign_up, unique_email
from tests.helpers.api import sign_in as api_sign_in
from tests.helpers.browser import GuardedContexts, sign_in
from tests.pages.test_pages import DESKTOP, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

LIVE_MS = 1000  # the bound for a stock change to reach an open storefront
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


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
    assert response.status == 201

    # The other storefront shows the stock drop within 1 s of the answer (the wait's own timeout).
    await expect(card(second, apples["id"]).get_by_test_id("product-stock")).to_have_text("4 left", timeout=LIVE_MS)
    await expect(card(second, honey["id"]).get_by_test_id("product-stock")).to_have_text("2 left", timeout=LIVE_MS)

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


async def test_double_click_and_retry_after_a_cut_place_one_order_each_in_ukrainian(
    hub: TestClient, base_url: str, pages: GuardedContexts
) -> None:
    admin = await sign_up(hub, "market_admin")
    market = await make_market(hub, admin)
    bread = await make_product(hub, admin, market["id"], name="Хліб", price_cents=3800, stock=3)
    customer = await sign_up(hub, "customer", locale="ua")
    page = await pages.new_page(locale="uk-UA")
    await open_market(page, base_url, market)
    # The browser's language before sign-in, the customer's `locale` after it.
    await expect(card(page, bread["id"]).get_by_test_id("product-stock")).to_have_text("Залишилось 3")
    await sign_in_on_shop(page, customer)
    await expect(page.locator("html")).to_have_attribute("lang", "uk")
    await card(page, bread["id"]).get_by_test_id("add-to-cart").click()
    await expect(page.get_by_test_id("place-order")).to_have_text("Оформити замовлення")
    await page.get_by_test_id("place-order").dblclick()
    await expect(page).to_have_url(re.compile(r"/track\?order=[0-9a-f]{24}$"))
    await expect(page.get_by_test_id("current-status")).to_have_text("Очікує")
    assert len(await orders_of(hub, customer)) == 1

    # The answer to the first attempt is lost (the order was placed); pressing again replays it.
    pages.allow_console(r"net::ERR_FAILED", "the test cuts the first checkout's answer on purpose")
    await open_market(page, base_url, market)
    await card(page, bread["id"]).get_by_test_id("add-to-cart").click()
    keys: list[str | None] = []

    async def cut_after_placing(route: Route) -> None:
        keys.append(await route.request.header_value("Idempotency-Key"))
        placed = await route.fetch()
        assert placed.status == 201
        await route.abort("failed")

    await page.route("**/api/v1/orders", cut_after_placing, times=1)
    await page.get_by_test_id("place-order").click()
    await expect(page.get_by_test_id("checkout-error")).to_contain_text("двічі воно не оформиться")
    assert len(await orders_of(hub, customer)) == 2
    async with page.expect_response(lambda r: r.url.endswith("/api/v1/orders")) as replay:
        await page.get_by_test_id("place-order").click()
    answer = await replay.value
    assert answer.status == 200 and await answer.header_value("Idempotent-Replayed") == "true"
    assert await answer.request.header_value("Idempotency-Key") == keys[0]
    await expect(page).to_have_url(re.compile(r"/track\?order=[0-9a-f]{24}$"))
    assert len(await orders_of(hub, customer)) == 2  # the retry placed nothing new


async def test_dashboard_runs_the_market_orders_details_alerts_and_products_tab(
    hub: TestClient, base_url: str, pages: GuardedContexts, tmp_path: Path
) -> None:
    out = SCREENSHOT_DIR if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    admin = await sign_up(hub, "market_admin", name="Olena")
    market = await make_market(hub, admin, name="Podil Farmers' Market", delivery_options=["pickup", "delivery"],
                               description="Farm produce from the Kyiv region, every day.")  # fmt: skip
    apples = await make_product(hub, admin, market["id"], name="Apples, 1 kg", category="Fruit", price_cents=4500,
                                stock=40)  # fmt: skip
    honey = await make_product(hub, admin, market["id"], name="Buckwheat honey", category="Honey", price_cents=18000,
                               stock=4, description="Raw, from Poltava apiaries.")  # fmt: skip
    await make_product(hub, admin, market["id"], name="Goat cheese", category="Dairy", price_cents=12000, stock=0)
    customer = await sign_up(hub, "customer", name="Taras", phone="+380 67 555 0101")
    first = await place_order(hub, customer, market["id"], [(apples["id"], 2)], delivery_option="delivery",
                              delivery_address="12 Khreshchatyk St, Kyiv", notes="Leave at the door")  # fmt: skip
    assert first.status == 201, await first.text()
    first_order = await first.json()

    dashboard = await pages.new_page(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/Kyiv")
    await dashboard.add_init_script("window.print = () => { window.__printed = (window.__printed || 0) + 1; }")
    await sign_in(dashboard, base_url, "/dashboard", admin)
    row = dashboard.locator(f'[data-testid="order-row"][data-order-id="{first_order["id"]}"]')
    await expect(row.get_by_test_id("customer-name")).to_have_text("Taras")
    await expect(row.get_by_test_id("customer-phone")).to_have_text("+380 67 555 0101")
    await expect(row.get_by_test_id("order-address")).to_contain_text("12 Khreshchatyk St, Kyiv")
    await expect(row.get_by_test_id("order-notes")).to_contain_text("Leave at the door")
    # ORDER_CONFIRM_TIMEOUT_MINUTES (15 by default) comes from the server, not from the page.
    meta = dashboard.locator('meta[name="order-confirm-timeout-seconds"]')
    await expect(meta).to_have_attribute("content", "900")
    await expect(row.get_by_test_id("countdown")).to_have_text(re.compile(r"^Auto-cancel in 1[45]:\d\d$"))

    # The chart's count axis, one order in the busiest hour: 0 and 1, never 0, 1, 1.
    await expect(dashboard.locator('[data-testid="chart"] [data-axis="orders"]')).to_have_text(["0", "1"])
    await expect(dashboard.locator('[data-testid="chart"] [data-axis="revenue"]')).to_have_text(
        [re.compile(r"^UAH\s?0$"), re.compile(r"^UAH\s?100$")]  # 90.00 of revenue: a round top of 100
    )

    # Printing the ticket fills it with the order and hands it to the browser's print.
    await row.get_by_test_id("print-ticket").click()
    assert await dashboard.evaluate("window.__printed") == 1
    await expect(dashboard.locator("#ticket")).to_contain_text("Leave at the door")
    await expect(dashboard.locator("#ticket")).to_contain_text("+380 67 555 0101")

    # A new order: a tone (sound switched on), and a count in the title until the page is seen.
    await dashboard.get_by_test_id("sound-toggle").click()
    await expect(dashboard.get_by_test_id("sound-toggle")).to_have_attribute("aria-pressed", "true")
    second = await place_order(hub, customer, market["id"], [(honey["id"], 1)])
    assert second.status == 201, await second.text()
    await expect(dashboard.locator("body")).to_have_attribute("data-beeps", "1", timeout=LIVE_MS * 2)
    await expect(dashboard).to_have_title(re.compile(r"^\(1\) Market dashboard"))
    await dashboard.keyboard.press("Shift")
    await expect(dashboard).to_have_title(re.compile(r"^Market dashboard"))

    # The Products tab: a stock edit reaches an open storefront within 1 s.
    shop = await pages.new_page(viewport=DESKTOP, locale="en-GB")
    await shop.goto(f"{base_url}/shop?market={market['id']}")
    await expect(shop.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=10_000)
    await expect(card(shop, honey["id"]).get_by_test_id("product-stock")).to_have_text("3 left")
    await dashboard.get_by_test_id("tab-products").click()
    product_row = dashboard.locator(f'[data-testid="product-row"][data-product-id="{honey["id"]}"]')
    await expect(product_row.get_by_test_id("product-stock")).to_have_text("3")
    await product_row.get_by_test_id("product-edit").click()
    await product_row.get_by_test_id("edit-stock").fill("25")
    await product_row.get_by_test_id("edit-price").fill("175.50")
    await product_row.get_by_test_id("product-save").click()
    await expect(card(shop, honey["id"]).get_by_test_id("product-stock")).to_have_text("In stock", timeout=LIVE_MS)
    await expect(card(shop, honey["id"]).get_by_test_id("product-price")).to_have_text(re.compile(r"175\.50"))
    await expect(product_row.get_by_test_id("product-stock")).to_have_text("25")

    # Create one on the tab: the storefront lists it; remove it (a second press confirms): gone.
    await dashboard.get_by_test_id("pf-name").fill("Rye bread")
    await dashboard.get_by_test_id("pf-category").fill("Bakery")
    await dashboard.get_by_test_id("pf-price").fill("38")
    await dashboard.get_by_test_id("pf-stock").fill("12")
    await dashboard.get_by_test_id("pf-submit").click()
    bread_row = dashboard.locator('[data-testid="product-row"]', has_text="Rye bread")
    await expect(bread_row.get_by_test_id("product-stock")).to_have_text("12")
    bread_id = await bread_row.get_attribute("data-product-id")
    bread_on_shop = card(shop, str(bread_id)).get_by_test_id("product-stock")
    await expect(bread_on_shop).to_have_text("In stock", timeout=LIVE_MS)
    await bread_row.get_by_test_id("product-remove").click()
    await bread_row.get_by_test_id("product-remove").click()
    await expect(bread_row).to_have_count(0)
    await expect(bread_on_shop).to_have_text("Not available", timeout=LIVE_MS)
    await dashboard.screenshot(path=out / "products-tab.png")

    await card(shop, apples["id"]).get_by_test_id("add-to-cart").click()
    await card(shop, honey["id"]).get_by_test_id("add-to-cart").click()
    await shop.get_by_test_id("delivery_option-delivery").check()
    await shop.screenshot(path=out / "shop.png")
    phone = await pages.new_page(viewport=PHONE, is_mobile=True, has_touch=True, locale="en-GB")
    await phone.goto(f"{base_url}/shop?market={market['id']}")
    await expect(card(phone, apples["id"])).to_be_visible()
    overflow = await phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"/shop is {overflow}px wider than a phone screen"
