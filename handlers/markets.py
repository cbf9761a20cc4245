"""REST: /markets."""

from __future__ import annotations

from aiohttp import web

from handlers.http import ApiRoutes, current_user, json_response, list_of, list_response, optional_user
from hub.keys import catalog_key
from hub.schemas.catalog import MarketCreate, MarketQuery, MarketUpdate
from hub.schemas.public import MarketPublic

routes = ApiRoutes("markets")


@routes.route("GET", "/markets", summary="List active markets", query=MarketQuery, response=list_of(MarketPublic),
              auth=False, errors=(422,))  # fmt: skip
async def list_markets(request: web.Request, query: MarketQuery) -> web.Response:
    markets, total = await request.app[catalog_key].list_markets(query)
    return list_response([MarketPublic.of(market) for market in markets], total)


@routes.route("GET", "/markets/{id}", summary="A market", response=MarketPublic, auth=False, errors=(404,))
async def get_market(request: web.Request) -> web.Response:
    viewer = await optional_user(request)
    return json_response(
        MarketPublic.of(await request.app[catalog_key].market(request.match_info["id"], viewer=viewer))
    )


@routes.route("POST", "/markets", summary="Create a market", body=MarketCreate, response=MarketPublic, status=201,
              errors=(401, 403, 409, 422))  # fmt: skip
async def create_market(request: web.Request, body: MarketCreate) -> web.Response:
    user = await current_user(request)
    return json_response(MarketPublic.of(await request.app[catalog_key].create_market(user, body)), status=201)


@routes.route("PATCH", "/markets/{id}", summary="Update a market", body=MarketUpdate, response=MarketPublic,
              errors=(401, 403, 404, 409, 422))  # fmt: skip
async def update_market(request: web.Request, body: MarketUpdate) -> web.Response:
    user = await current_user(request)
    market = await request.app[catalog_key].update_market(user, request.match_info["id"], body)
    return json_response(MarketPublic.of(market))


@routes.route("POST", "/markets/{id}/verify", summary="Verify a market (super_admin)", response=MarketPublic,
              errors=(401, 403, 404))  # fmt: skip
async def verify_market(request: web.Request) -> web.Response:
    user = await current_user(request)
    return json_response(MarketPublic.of(await request.app[catalog_key].verify_market(user, request.match_info["id"])))


@routes.route("DELETE", "/markets/{id}", summary="Deactivate a market", status=204, errors=(401, 403, 404))
async def delete_market(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[catalog_key].delete_market(user, request.match_info["id"])
    return web.Response(status=204)
