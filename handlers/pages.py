"""The pages under static/: the landing page, the storefront, the market dashboard and order tracking."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from hub.keys import settings_key

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGES = {"/": "index.html", "/shop": "shop.html", "/dashboard": "dashboard.html", "/track": "track.html"}
# Server settings a page shows, written into its HTML: `{{name}}` placeholders (a page has no other way
# to read them before it signs in; they are not secrets).
SETTINGS_IN_PAGES = {"dashboard.html"}

# The pages load nothing from elsewhere: scripts, styles and sockets are this origin's.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page(filename: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def serve(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / filename, headers=_SECURITY_HEADERS)

    return serve


def _page_with_settings(filename: str, values: dict[str, str]) -> Callable[[web.Request], Awaitable[web.Response]]:
    html = (STATIC_DIR / filename).read_text(encoding="utf-8")
    for name, value in values.items():
        html = html.replace("{{" + name + "}}", value)
    body = html.encode()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8", headers=_SECURITY_HEADERS)

    return serve


def add_page_routes(app: web.Application) -> None:
    settings = app[settings_key]
    values = {"order_confirm_timeout_seconds": str(round(settings.order_confirm_timeout_minutes * 60))}
    for path, filename in PAGES.items():
        if filename in SETTINGS_IN_PAGES:
            app.router.add_get(path, _page_with_settings(filename, values))
        else:
            app.router.add_get(path, _page(filename))
    app.router.add_static("/static", STATIC_DIR, append_version=False)
