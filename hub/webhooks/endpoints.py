"""Registering and managing a market's webhook endpoints, and reading their delivery log.

Only the market's owner and a super_admin see a market's endpoints; for everyone else every route
answers 404, as if the endpoint did not exist. A market has at most MAX_ENDPOINTS. The URL is
checked (hub/webhooks/address_guard.py) at registration and on every change of it. The secret is
made here and returned only by `register` and `rotate_secret`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from auth.policy import manages_market
from hub.clock import Clock, SystemClock
from hub.errors import Conflict, NotFound, ValidationFailed
from hub.schemas.webhooks import DeliveryQuery, WebhookCreate, WebhookUpdate
from hub.webhooks.address_guard import AddressRefused, check_url
from hub.webhooks.signing import new_secret
from store.codec import epoch_ms, now, parse_id
from store.markets import Markets
from store.models import User
from store.webhooks import WebhookDeliveries, WebhookDelivery, WebhookEndpoint, WebhookEndpoints

MAX_ENDPOINTS = 10
SECRET_OVERLAP = timedelta(hours=24)


class Webhooks:
    def __init__(
        self,
        markets: Markets,
        endpoints: WebhookEndpoints,
        deliveries: WebhookDeliveries,
        *,
        allow_insecure: bool,
        wake_sender: Callable[[], None] = lambda: None,
        clock: Clock | None = None,
    ) -> None:
        self.markets = markets
        self.endpoints = endpoints
        self.deliveries = deliveries
        self.allow_insecure = allow_insecure
        self.wake_sender = wake_sender
        # What time it is for the secrets' overlap after a rotation (tests move it).
        self.clock = clock or SystemClock()

    async def _managed_market(self, user: User, market_id: str) -> str:
        market = await self.markets.get(market_id)
        if market is None or not manages_market(user, market):
            raise NotFound("Market not found")
        return market.id

    async def _managed_endpoint(self, user: User, endpoint_id: str) -> WebhookEndpoint:
        oid = parse_id(endpoint_id)
        endpoint = await self.endpoints.get(oid) if oid else None
        if endpoint is None:
            raise NotFound("Webhook not found")
        market = await self.markets.get(endpoint.market_id)
        if market is None or not manages_market(user, market):
            raise NotFound("Webhook not found")
        return endpoint

    async def _checked_url(self, url: str) -> str:
        try:
            await check_url(url, allow_insecure=self.allow_insecure)
        except AddressRefused as refused:
            raise ValidationFailed(
                details=[{"loc": ["body", "url"], "msg": str(refused), "type": "url_refused"}]
            ) from None
        return url

    async def register(self, user: User, market_id: str, body: WebhookCreate) -> tuple[WebhookEndpoint, str]:
        """The new endpoint and its secret (shown this once)."""
        market = await self._managed_market(user, market_id)
        url = await self._checked_url(body.url)
        if await self.endpoints.count(market) >= MAX_ENDPOINTS:
            raise Conflict(f"A market has at most {MAX_ENDPOINTS} webhook endpoints", code="WEBHOOK_LIMIT")
        secret = new_secret()
        endpoint = await self.endpoints.insert(
            market, url=url, events=list(body.events), description=body.description or "", secret=secret
        )
        if await self.endpoints.count(market) > MAX_ENDPOINTS:
            # Registered at the same moment as another one past the limit: undo (no transactions).
            await self.endpoints.delete(endpoint.id)
            raise Conflict(f"A market has at most {MAX_ENDPOINTS} webhook endpoints", code="WEBHOOK_LIMIT")
        return endpoint, secret

    async def list_endpoints(self, user: User, market_id: str) -> list[WebhookEndpoint]:
        return await self.endpoints.of_market(await self._managed_market(user, market_id))

    async def get(self, user: User, endpoint_id: str) -> WebhookEndpoint:
        return await self._managed_endpoint(user, endpoint_id)

    async def update(self, user: User, endpoint_id: str, body: WebhookUpdate) -> WebhookEndpoint:
        endpoint = await self._managed_endpoint(user, endpoint_id)
        changes: dict[str, object] = {}
        if body.url is not None:
            changes["url"] = await self._checked_url(body.url)
        if body.events is not None:
            changes["events"] = list(body.events)
        if "description" in body.model_fields_set:
            changes["description"] = body.description or ""
        if body.is_active is not None:
            changes["is_active"] = body.is_active
        updated = await self.endpoints.update(endpoint.id, changes)
        if updated is None:
            raise NotFound("Webhook not found")
        if body.is_active:
            await self.endpoints.note_success(endpoint.id)  # turned on again: its failing streak starts over
        return updated

    async def delete(self, user: User, endpoint_id: str) -> None:
        endpoint = await self._managed_endpoint(user, endpoint_id)
        await self.endpoints.delete(endpoint.id)
        await self.deliveries.delete_of_endpoint(endpoint.id)

    async def rotate_secret(self, user: User, endpoint_id: str) -> str:
        """A new secret; deliveries are signed with the old one too for SECRET_OVERLAP."""
        endpoint = await self._managed_endpoint(user, endpoint_id)
        secret = new_secret()
        until_ms = epoch_ms(self.clock.now() + SECRET_OVERLAP)
        if not await self.endpoints.rotate(endpoint, secret, previous_until_ms=until_ms):
            raise Conflict("The secret was rotated meanwhile; try again", code="VERSION_CONFLICT")
        return secret

    async def deliveries_of(
        self, user: User, endpoint_id: str, query: DeliveryQuery
    ) -> tuple[list[WebhookDelivery], int]:
        endpoint = await self._managed_endpoint(user, endpoint_id)
        return await self.deliveries.log(endpoint.id, status=query.status, skip=query.skip, limit=query.limit)

    async def retry(self, user: User, endpoint_id: str, delivery_id: str) -> None:
        endpoint = await self._managed_endpoint(user, endpoint_id)
        oid = parse_id(delivery_id)
        if oid is None or not await self.deliveries.retry_now(endpoint.id, oid, epoch_ms(now())):
            raise NotFound("Delivery not found")
        self.wake_sender()
