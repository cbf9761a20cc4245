"""Email notices through a real SMTP server (aiosmtpd); a dead SMTP server never hurts an order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller

from hub.keys import email_notices_key
from hub.settings import Settings
from store.embedded import free_port
from tests.helpers.api import make_market, make_product, place_order, set_order_status, sign_up


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["To"] == address]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], inbox: tuple[Inbox, int]) -> Settings:
    return make_settings(email_service_url=f"smtp://127.0.0.1:{inbox[1]}")


async def test_customer_and_market_get_mail_in_their_locale(
    client: TestClient, app: web.Application, inbox: tuple[Inbox, int]
) -> None:
    mailbox = inbox[0]
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client, locale="ua")
    market = await make_market(client, owner, name="Bessarabka")
    product = await make_product(client, owner, market["id"], name="Honey", price_cents=12345)
    response = await place_order(client, customer, market["id"], [(product["id"], 2)])
    assert response.status == 201
    order = await response.json()
    assert (await set_order_status(client, owner, order["id"], "confirmed")).status == 200
    notices = app[email_notices_key]
    async with asyncio.timeout(10):
        await notices.idle()

    assert (notices.sent, notices.failures) == (3, 0)
    to_customer = mailbox.to(customer.email)
    assert [message["Subject"] for message in to_customer] == [
        "Ваше замовлення в Bessarabka оформлено",
        "Ваше замовлення в Bessarabka: підтверджено",
    ]
    assert "246.90 UAH" in to_customer[0].get_content()  # type: ignore[attr-defined]
    to_market = mailbox.to(owner.email)
    assert len(to_market) == 1
    assert to_market[0]["Subject"] == f"New order {order['id']}: 246.90 UAH"
    assert "Honey x 2" in to_market[0].get_content()  # type: ignore[attr-defined]


async def test_orders_succeed_quickly_with_smtp_down(
    make_settings: Callable[..., Settings], aiohttp_client: Callable[..., Any]
) -> None:
    from hub.app import create_app

    app = create_app(make_settings(email_service_url=f"smtp://127.0.0.1:{free_port()}"))  # nothing listens there
    client = await aiohttp_client(app)
    owner = await sign_up(client, "market_admin")
    customer = await sign_up(client)
    market = await make_market(client, owner)
    product = await make_product(client, owner, market["id"])
    started = time.perf_counter()
    response = await place_order(client, customer, market["id"], [(product["id"], 1)])
    elapsed = time.perf_counter() - started
    assert response.status == 201
    assert elapsed < 1.0
    order = await response.json()
    assert (await set_order_status(client, customer, order["id"], "cancelled")).status == 200
    notices = app[email_notices_key]
    async with asyncio.timeout(20):
        await notices.idle()
    assert (notices.sent, notices.failures) == (0, 3)
