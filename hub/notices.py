# ruff: noqa: RUF001 - the Ukrainian texts are Cyrillic on purpose
"""Email notices about orders: an OrderListener that sends mail in the background with aiosmtplib.

The customer gets a message when an order is placed and at every status change; the market's
contact email gets one per new order. Text is in the recipient's locale (en, ua; the market's in
its owner's). Sending never runs on the request path: each notice is its own task, bounded by
`timeout_seconds`; a failure is logged and counted in `failures` (`sent` counts successes), for
metrics to pick up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiosmtplib

from hub.metrics import HubMetrics
from store.markets import Markets
from store.models import Locale, Market, Order, OrderStatus
from store.users import Users

log = logging.getLogger(__name__)

STATUS_NAMES: dict[Locale, dict[OrderStatus, str]] = {
    "en": {
        OrderStatus.PENDING: "pending",
        OrderStatus.CONFIRMED: "confirmed",
        OrderStatus.PREPARING: "being prepared",
        OrderStatus.READY: "ready",
        OrderStatus.PICKED_UP: "picked up",
        OrderStatus.OUT_FOR_DELIVERY: "out for delivery",
        OrderStatus.DELIVERED: "delivered",
        OrderStatus.CANCELLED: "cancelled",
    },
    "ua": {
        OrderStatus.PENDING: "очікує підтвердження",
        OrderStatus.CONFIRMED: "підтверджено",
        OrderStatus.PREPARING: "готується",
        OrderStatus.READY: "готове",
        OrderStatus.PICKED_UP: "отримано",
        OrderStatus.OUT_FOR_DELIVERY: "в дорозі",
        OrderStatus.DELIVERED: "доставлено",
        OrderStatus.CANCELLED: "скасовано",
    },
}

TEXTS: dict[Locale, dict[str, str]] = {
    "en": {
        "placed_subject": "Your order at {market} is placed",
        "placed_body": "Thank you! Your order {order_id} at {market} is placed.\nTotal: {total}.\n"
        "We will write again when its status changes.",
        "changed_subject": "Your order at {market} is {status}",
        "changed_body": "Your order {order_id} at {market} is now {status}.{reason}",
        "reason": "\nReason: {reason}",
        "new_subject": "New order {order_id}: {total}",
        "new_body": "A new order {order_id} was placed at {market}.\nItems:\n{lines}\nTotal: {total}.\n"
        "Delivery: {delivery}. Payment: {payment}.",
        "webhook_off_subject": "A webhook endpoint of {market} was turned off",
        "webhook_off_body": "Deliveries to {url} have failed for 24 hours, so the endpoint was turned off.\n"
        "Fix the receiver, then turn it on again on the dashboard (Webhooks) or with PATCH /webhooks/{{id}}.",
    },
    "ua": {
        "placed_subject": "Ваше замовлення в {market} оформлено",
        "placed_body": "Дякуємо! Ваше замовлення {order_id} в {market} оформлено.\nСума: {total}.\n"
        "Ми напишемо, коли його статус зміниться.",
        "changed_subject": "Ваше замовлення в {market}: {status}",
        "changed_body": "Статус вашого замовлення {order_id} в {market}: {status}.{reason}",
        "reason": "\nПричина: {reason}",
        "new_subject": "Нове замовлення {order_id}: {total}",
        "new_body": "В {market} нове замовлення {order_id}.\nТовари:\n{lines}\nСума: {total}.\n"
        "Отримання: {delivery}. Оплата: {payment}.",
        "webhook_off_subject": "Вебхук {market} вимкнено",
        "webhook_off_body": "Доставки на {url} не вдавалися 24 години, тож цю адресу вимкнено.\n"
        "Виправте отримувача й увімкніть її знову на панелі (Вебхуки) або через PATCH /webhooks/{{id}}.",
    },
}


def money(cents: int, currency: str) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d} {currency}"


def smtp_address(url: str) -> tuple[str, int]:
    """smtp://host[:port] → (host, port); port 25 by default."""
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or 25


class EmailNotices:
    def __init__(
        self, *, url: str, sender: str, users: Users, markets: Markets, metrics: HubMetrics, timeout_seconds: float = 10
    ) -> None:
        self.host, self.port = smtp_address(url)
        self.metrics = metrics
        self.sender = sender
        self.users = users
        self.markets = markets
        self.timeout_seconds = timeout_seconds
        self.sent = 0
        self.failures = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # OrderListener

    async def order_created(self, order: Order) -> None:
        self._in_background(self._order_created(order))

    async def order_changed(self, order: Order, previous_status: OrderStatus) -> None:
        self._in_background(self._order_changed(order))

    # Background work

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait for the notices in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, *, timeout_seconds: float = 5) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), timeout_seconds)
        for task in list(self._tasks):
            task.cancel()

    async def _order_created(self, order: Order) -> None:
        try:
            market = await self.markets.get(order.market_id)
            customer = await self.users.get(order.customer_id)
            owner = await self.users.get(market.owner_id) if market is not None else None
        except Exception:  # noqa: BLE001 - a notice never raises into anything
            self._failed(order, "lookup")
            return
        market_name = market.name if market is not None else ""
        if customer is not None:
            text = TEXTS[customer.locale]
            values = self._values(order, market_name, customer.locale)
            await self._send(
                customer.email, text["placed_subject"].format(**values), text["placed_body"].format(**values), order
            )
        if market is not None:
            locale: Locale = owner.locale if owner is not None else "en"
            text = TEXTS[locale]
            values = self._values(order, market_name, locale, market)
            await self._send(
                market.contact_email, text["new_subject"].format(**values), text["new_body"].format(**values), order
            )

    async def _order_changed(self, order: Order) -> None:
        try:
            market = await self.markets.get(order.market_id)
            customer = await self.users.get(order.customer_id)
        except Exception:  # noqa: BLE001 - a notice never raises into anything
            self._failed(order, "lookup")
            return
        if customer is None:
            return
        text = TEXTS[customer.locale]
        values = self._values(order, market.name if market is not None else "", customer.locale)
        await self._send(
            customer.email, text["changed_subject"].format(**values), text["changed_body"].format(**values), order
        )

    async def webhook_endpoint_deactivated(self, market_id: str, url: str) -> None:
        """The market's contact email hears that an endpoint failed for a day and was turned off."""
        market = await self.markets.get(market_id)
        if market is None:
            return
        owner = await self.users.get(market.owner_id)
        text = TEXTS[owner.locale if owner is not None else "en"]
        message = EmailMessage()
        message["From"], message["To"] = self.sender, market.contact_email
        message["Subject"] = text["webhook_off_subject"].format(market=market.name)
        message.set_content(text["webhook_off_body"].format(url=url))
        try:
            await aiosmtplib.send(message, hostname=self.host, port=self.port, timeout=self.timeout_seconds)
        except Exception:
            self.failures += 1
            self.metrics.email_failures.inc()
            log.warning("webhook notice email failed", exc_info=True, extra={"market_id": market_id})
            return
        self.sent += 1

    def _values(self, order: Order, market_name: str, locale: Locale, market: Market | None = None) -> dict[str, str]:
        reason = order.status_history[-1].reason
        lines = "\n".join(
            f"- {item.name} x {item.quantity} = {money(item.line_total_cents, order.currency)}" for item in order.items
        )
        return {
            "order_id": order.id,
            "market": market_name,
            "total": money(order.total_cents, order.currency),
            "status": STATUS_NAMES[locale][order.status],
            "reason": TEXTS[locale]["reason"].format(reason=reason) if reason else "",
            "lines": lines,
            "delivery": order.delivery_option + (f" ({order.delivery_address})" if order.delivery_address else ""),
            "payment": order.payment_method,
        }

    async def _send(self, to: str, subject: str, body: str, order: Order) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            await aiosmtplib.send(message, hostname=self.host, port=self.port, timeout=self.timeout_seconds)
        except Exception:  # noqa: BLE001 - SMTP trouble is logged and counted, never raised
            self._failed(order, "send")
            return
        self.sent += 1

    def _failed(self, order: Order, step: str) -> None:
        self.failures += 1
        self.metrics.email_failures.inc()
        log.warning("order email failed", exc_info=True, extra={"order_id": order.id, "step": step})
