"""REST: a market's webhook endpoints and their delivery log."""

from __future__ import annotations

from aiohttp import web

from handlers.http import ApiRoutes, current_user, json_response, list_of, list_response
from hub.keys import webhooks_key
from hub.schemas.webhooks import (
    Delivery,
    DeliveryQuery,
    RetryAccepted,
    Webhook,
    WebhookCreate,
    WebhookSecret,
    WebhookUpdate,
    WebhookWithSecret,
)

routes = ApiRoutes("webhooks")


@routes.route("POST", "/markets/{id}/webhooks", summary="Register a webhook endpoint (the secret is shown once)",
              body=WebhookCreate, response=WebhookWithSecret, status=201, errors=(401, 404, 409, 422))  # fmt: skip
async def register_webhook(request: web.Request, body: WebhookCreate) -> web.Response:
    user = await current_user(request)
    endpoint, secret = await request.app[webhooks_key].register(user, request.match_info["id"], body)
    return json_response(WebhookWithSecret(**Webhook.of(endpoint).model_dump(), secret=secret), status=201)


@routes.route("GET", "/markets/{id}/webhooks", summary="A market's webhook endpoints", response=list_of(Webhook),
              errors=(401, 404))  # fmt: skip
async def list_webhooks(request: web.Request) -> web.Response:
    user = await current_user(request)
    endpoints = await request.app[webhooks_key].list_endpoints(user, request.match_info["id"])
    return list_response([Webhook.of(endpoint) for endpoint in endpoints], len(endpoints))


@routes.route("GET", "/webhooks/{id}", summary="A webhook endpoint", response=Webhook, errors=(401, 404))
async def get_webhook(request: web.Request) -> web.Response:
    user = await current_user(request)
    return json_response(Webhook.of(await request.app[webhooks_key].get(user, request.match_info["id"])))


@routes.route("PATCH", "/webhooks/{id}", summary="Change a webhook endpoint", body=WebhookUpdate, response=Webhook,
              errors=(401, 404, 422))  # fmt: skip
async def update_webhook(request: web.Request, body: WebhookUpdate) -> web.Response:
    user = await current_user(request)
    return json_response(Webhook.of(await request.app[webhooks_key].update(user, request.match_info["id"], body)))


@routes.route("DELETE", "/webhooks/{id}", summary="Delete a webhook endpoint and its log", status=204,
              errors=(401, 404))  # fmt: skip
async def delete_webhook(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[webhooks_key].delete(user, request.match_info["id"])
    return web.Response(status=204)


@routes.route("POST", "/webhooks/{id}/rotate-secret", summary="Rotate the signing secret (shown once)",
              response=WebhookSecret, errors=(401, 404, 409))  # fmt: skip
async def rotate_secret(request: web.Request) -> web.Response:
    user = await current_user(request)
    return json_response(
        WebhookSecret(secret=await request.app[webhooks_key].rotate_secret(user, request.match_info["id"]))
    )


@routes.route("GET", "/webhooks/{id}/deliveries", summary="The delivery log, newest first", query=DeliveryQuery,
              response=list_of(Delivery), errors=(401, 404, 422))  # fmt: skip
async def list_deliveries(request: web.Request, query: DeliveryQuery) -> web.Response:
    user = await current_user(request)
    deliveries, total = await request.app[webhooks_key].deliveries_of(user, request.match_info["id"], query)
    return list_response([Delivery.of(delivery) for delivery in deliveries], total)


@routes.route("POST", "/webhooks/{id}/deliveries/{delivery_id}/retry", summary="Send a delivery again now",
              response=RetryAccepted, status=202, errors=(401, 404))  # fmt: skip
async def retry_delivery(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[webhooks_key].retry(user, request.match_info["id"], request.match_info["delivery_id"])
    return json_response(RetryAccepted(), status=202)
