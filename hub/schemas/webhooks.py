"""Webhook endpoints and the delivery log: bodies, queries and replies (DESIGN.md, Webhooks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool, StringConstraints, field_validator

from hub.schemas.common import DISTINCT_ITEMS, Input, NotBlankInSchema, Page, not_null
from hub.webhooks.address_guard import MAX_URL_LENGTH
from store.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEventType, from_ms

WebhookUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_URL_LENGTH), NotBlankInSchema()
]
EventTypes = Annotated[list[WebhookEventType], Field(min_length=1, max_length=2, json_schema_extra=DISTINCT_ITEMS)]
WebhookDescription = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


def _distinct(values: list[str] | None) -> list[str] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError("values must be distinct")
    return values


class WebhookCreate(Input):
    url: WebhookUrl
    events: EventTypes
    description: WebhookDescription | None = None

    _distinct_events = field_validator("events")(_distinct)


class WebhookUpdate(Input):
    url: WebhookUrl | None = None
    events: EventTypes | None = None
    description: WebhookDescription | None = None
    is_active: StrictBool | None = None

    _distinct_events = field_validator("events")(_distinct)
    _not_null = not_null("url", "events", "is_active")


class DeliveryQuery(Page):
    status: DeliveryStatus | None = None


class Webhook(BaseModel):
    """An endpoint as its owner sees it: never its secret (except at creation, WebhookWithSecret)."""

    id: str
    market_id: str
    url: str
    events: list[WebhookEventType]
    description: str
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> Webhook:
        return cls.model_validate(endpoint.model_dump())


class WebhookWithSecret(Webhook):
    secret: str


class WebhookSecret(BaseModel):
    secret: str


class Delivery(BaseModel):
    id: str
    event: WebhookEventType
    order_id: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> Delivery:
        return cls(
            id=delivery.id, event=delivery.event, order_id=delivery.order_id, status=delivery.status,
            attempts=delivery.attempts, last_status_code=delivery.last_status_code, last_error=delivery.last_error,
            next_attempt_at=from_ms(delivery.next_attempt_ms) if delivery.status == "pending" else None,
            created_at=datetime.fromtimestamp(delivery.created_ms / 1000, UTC),
            delivered_at=from_ms(delivery.delivered_ms),
        )  # fmt: skip


class RetryAccepted(BaseModel):
    status: Literal["pending"] = "pending"
