"""REST: /orders."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from handlers.http import ApiRoutes, Header, current_user, json_response, list_of, list_response, validation_details
from hub.errors import ValidationFailed
from hub.keys import order_placing_key, order_reader_key, order_status_key
from hub.schemas.orders import IdempotencyHeader, IdempotencyKey, OrderCreate, OrderQuery, OrderStatusChange
from hub.schemas.public import OrderPublic

routes = ApiRoutes("orders")

IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(request: web.Request) -> str | None:
    raw = request.headers.get(IDEMPOTENCY_HEADER)
    try:
        return IdempotencyHeader(key=raw).key
    except ValidationError as exc:
        details = [{**item, "loc": ["header", IDEMPOTENCY_HEADER]} for item in validation_details(exc)]
        raise ValidationFailed(details=details) from None


@routes.route(
    "POST",
    "/orders",
    summary="Place an order",
    body=OrderCreate,
    response=OrderPublic,
    status=201,
    also={200: "A replay of an earlier request with the same Idempotency-Key (header Idempotent-Replayed: true)"},
    errors=(401, 404, 409, 422),
    headers={
        IDEMPOTENCY_HEADER: Header(
            "optional, ≤ 255 chars; a replay answers 200 with Idempotent-Replayed: true", IdempotencyKey
        )
    },
)
async def place_order(request: web.Request, body: OrderCreate) -> web.Response:
    user = await current_user(request)
    placed, replayed = await request.app[order_placing_key].place(user, body, idempotency_key(request))
    order = OrderPublic.of(placed)
    if replayed:
        return json_response(order, headers={"Idempotent-Replayed": "true"})
    return json_response(order, status=201)


@routes.route(
    "GET",
    "/orders",
    summary="List the orders the caller may see",
    query=OrderQuery,
    response=list_of(OrderPublic),
    errors=(401, 422),
)
async def list_orders(request: web.Request, query: OrderQuery) -> web.Response:
    user = await current_user(request)
    orders, total = await request.app[order_reader_key].list_orders(user, query)
    return list_response([OrderPublic.of(order) for order in orders], total)


@routes.route("GET", "/orders/{id}", summary="An order", response=OrderPublic, errors=(401, 404))
async def get_order(request: web.Request) -> web.Response:
    user = await current_user(request)
    return json_response(OrderPublic.of(await request.app[order_reader_key].get(user, request.match_info["id"])))


@routes.route(
    "PATCH",
    "/orders/{id}/status",
    summary="Move an order to another status",
    body=OrderStatusChange,
    response=OrderPublic,
    errors=(401, 404, 409, 422),
)
async def change_status(request: web.Request, body: OrderStatusChange) -> web.Response:
    user = await current_user(request)
    order = await request.app[order_status_key].change_status(user, request.match_info["id"], body)
    return json_response(OrderPublic.of(order))
