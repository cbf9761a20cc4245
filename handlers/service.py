"""Service routes: liveness, readiness, metrics, the OpenAPI document and its interactive docs."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import swagger_ui
from aiohttp import web

from handlers.http import ApiRoutes, json_response
from hub.keys import ReadinessCheck, metrics_key, readiness_checks_key
from hub.metrics import CONTENT_TYPE
from hub.schemas.common import Health

routes = ApiRoutes("service", prefix="")
SWAGGER_ASSETS = Path(swagger_ui.__file__).parent / "static"

_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Market Hub API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script></body></html>
"""
_DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#swagger-ui",
  deepLinking: true, persistAuthorization: false});
"""


@routes.route("GET", "/health", summary="Liveness: the process answers", response=Health, auth=False)
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.route("GET", "/ready", summary="Readiness: the database (and Redis, if configured) answer",
              response=dict[str, Any], auth=False, errors=(503,))  # fmt: skip
async def ready(request: web.Request) -> web.Response:
    checks: dict[str, ReadinessCheck] = request.app[readiness_checks_key]
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(3):
                await check()
            results[name] = "ok"
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            results[name] = "unavailable"
    ok = all(value == "ok" for value in results.values())
    return json_response({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)


@routes.route("GET", "/metrics", summary="Prometheus metrics (text exposition format)", auth=False)
async def metrics(request: web.Request) -> web.Response:
    body = request.app[metrics_key].exposition()
    # CONTENT_TYPE carries its own charset parameter, so it goes in the header as a whole.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(request.app[openapi_spec_key])


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_PAGE, content_type="text/html")


async def docs_init(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS_INIT, content_type="application/javascript")


openapi_spec_key = web.AppKey("openapi_spec", dict[str, Any])


def add_docs_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)
    app.router.add_get("/api/docs", docs_page)
    app.router.add_get("/api/docs/init.js", docs_init)
    with contextlib.suppress(FileNotFoundError):
        app.router.add_static("/api/docs/assets", SWAGGER_ASSETS, append_version=False)
