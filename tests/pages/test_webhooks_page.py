"""The dashboard's Webhooks panel in headless Chromium (tests/helpers/browser.py guards: no request leaves the
machine, no console error): add an endpoint and see its secret once, a delivery verified with that
secret, the delivery's status in the panel, and the retry button sending it again with the same id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient
from playwright.async_api import expect
from standardwebhooks.webhooks import Webhook

from hub.settings import Settings
from tests.helpers.api import make_market, make_product, place_order, sign_up
from tests.helpers.browser import GuardedContexts, sign_in
from tests.helpers.webhook_receiver import receiving

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allow_insecure=True, webhook_retry_scale=0.001)


async def test_the_owner_adds_an_endpoint_sees_its_deliveries_and_retries_one(
    hub: TestClient, base_url: str, pages: GuardedContexts
) -> None:
    admin = await sign_up(hub, "market_admin")
    market = await make_market(hub, admin)
    product = await make_product(hub, admin, market["id"])
    customer = await sign_up(hub, "customer")
    page = await pages.new_page()
    await sign_in(page, base_url, "/dashboard", admin)
    panel = page.get_by_test_id("webhooks")
    await expect(panel).to_be_visible()
    async with receiving() as receiver:
        await page.get_by_test_id("webhook-url").fill(receiver.url)
        await page.get_by_test_id("webhook-description").fill("Till")
        await page.get_by_test_id("webhook-add").click()
        secret_value = page.get_by_test_id("webhook-secret-value")
        await expect(secret_value).to_be_visible()
        secret = (await secret_value.text_content() or "").strip()
        assert secret.startswith("whsec_")
        await expect(page.get_by_test_id("webhook-rows").locator("tr")).to_have_count(1)

        response = await place_order(hub, customer, market["id"], [(product["id"], 1)])
        assert response.status == 201
        (first,) = await receiver.count(1)
        assert Webhook(secret).verify(first.body, first.headers)["type"] == "order.created"
        await page.get_by_test_id("webhook-show").click()
        status = page.get_by_test_id("delivery-status")
        await expect(status).to_have_count(1)
        # The sender records the outcome right after the answer: the panel shows it on its next load.
        for _ in range(50):
            if await status.text_content() == "delivered":
                break
            await asyncio.sleep(0.1)
            await page.get_by_test_id("webhook-show").click()
        await expect(status).to_have_text("delivered")
        await page.get_by_test_id("delivery-retry").click()
        again = (await receiver.count(2))[1]
        assert again.webhook_id == first.webhook_id

    await page.reload()
    await expect(page.get_by_test_id("webhook-rows").locator("tr")).to_have_count(1)
    await expect(page.get_by_test_id("webhook-secret")).to_be_hidden()
