"""The pages as HTTP serves them: /shop is a page like the others, and the dashboard carries the
server's ORDER_CONFIRM_TIMEOUT_MINUTES (the countdown to the hub's auto-cancel is not a constant in the page)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings


async def test_dashboard_carries_the_confirm_timeout_and_shop_is_served_with_the_csp(
    aiohttp_client: Callable[..., Awaitable[TestClient]], make_settings: Callable[..., Settings]
) -> None:
    client = await aiohttp_client(create_app(make_settings(order_confirm_timeout_minutes=2.5)))
    dashboard = await client.get("/dashboard")
    assert dashboard.status == 200
    html = await dashboard.text()
    assert '<meta name="order-confirm-timeout-seconds" content="150">' in html
    assert "{{" not in html
    for path in ("/shop", "/dashboard"):
        response = await client.get(path)
        assert response.status == 200
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    shop = await (await client.get("/shop")).text()
    assert 'src="/static/js/shop.js"' in shop and "http://" not in shop and "https://" not in shop
