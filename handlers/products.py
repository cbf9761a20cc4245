"""REST: /products."""

from __future__ import annotations

from aiohttp import web

from handlers.http import ApiRoutes, current_user, json_response, list_of, list_response, optional_user
from hub.keys import catalog_key
from hub.schemas.catalog import ProductCreate, ProductQuery, ProductUpdate
from hub.schemas.public import ProductPublic

routes = ApiRoutes("products")


@routes.route("GET", "/products", summary="List products", query=ProductQuery, response=list_of(ProductPublic),
              auth=False, errors=(422,))  # fmt: skip
async def list_products(request: web.Request, query: ProductQuery) -> web.Response:
    products, total = await request.app[catalog_key].list_products(query)
    return list_response([ProductPublic.of(product) for product in products], total)


@routes.route("GET", "/products/{id}", summary="A product", response=ProductPublic, auth=False, errors=(404,))
async def get_product(request: web.Request) -> web.Response:
    viewer = await optional_user(request)
    return json_response(
        ProductPublic.of(await request.app[catalog_key].product(request.match_info["id"], viewer=viewer))
    )


@routes.route("POST", "/products", summary="Create a product", body=ProductCreate, response=ProductPublic, status=201,
              errors=(401, 403, 404, 422))  # fmt: skip
async def create_product(request: web.Request, body: ProductCreate) -> web.Response:
    user = await current_user(request)
    return json_response(ProductPublic.of(await request.app[catalog_key].create_product(user, body)), status=201)


@routes.route("PATCH", "/products/{id}", summary="Update a product", body=ProductUpdate, response=ProductPublic,
              errors=(401, 403, 404, 422))  # fmt: skip
async def update_product(request: web.Request, body: ProductUpdate) -> web.Response:
    user = await current_user(request)
    product = await request.app[catalog_key].update_product(user, request.match_info["id"], body)
    return json_response(ProductPublic.of(product))


@routes.route("DELETE", "/products/{id}", summary="Delete a product", status=204, errors=(401, 403, 404))
async def delete_product(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[catalog_key].delete_product(user, request.match_info["id"])
    return web.Response(status=204)
