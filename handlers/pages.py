"""The pages under static/: the landing page, the market dashboard and order tracking."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
PAGES = {"/": "index.html", "/dashboard": "dashboard.html", "/track": "track.html"}

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


def add_page_routes(app: web.Application) -> None:
    for path, filename in PAGES.items():
        app.router.add_get(path, _page(filename))
    app.router.add_static("/static", STATIC_DIR, append_version=False)
