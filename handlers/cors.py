"""CORS for the REST API from CORS_ORIGINS (aiohttp-cors).

No origins configured means same-origin only: no CORS headers at all, so browsers refuse
cross-origin reads. Socket.IO answers its own CORS from the same setting, so its routes are left
to it here (two sets of Access-Control headers would make browsers refuse both).
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

SOCKET_IO_PREFIX = "/socket.io"
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")
EXPOSED_HEADERS = ("X-Total-Count", "X-Request-ID", "Retry-After", "Idempotent-Replayed", "Location")
PREFLIGHT_MAX_AGE_SECONDS = 600


def add_cors(app: web.Application, origins: list[str]) -> None:
    """Call after every route is added: routes added later get no CORS headers."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=False,  # bearer tokens, not cookies
        # Any method: a path's routes may sit on several aiohttp resources, and aiohttp-cors would
        # answer the preflight from the first one only. Whether the method exists is the router's say.
        allow_methods="*",
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("path") or info.get("formatter") or info.get("prefix") or "")
        if not path.startswith(SOCKET_IO_PREFIX):
            cors.add(route)
