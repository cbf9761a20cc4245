"""Headers every response carries (DESIGN.md, REST preamble): no MIME sniffing anywhere, no
framing of any HTML (pages and /api/docs), and no software version in `Server`."""

from __future__ import annotations

from aiohttp import web

# aiohttp fills `Server` with "Python/x.y aiohttp/x.y.z" unless one is set: ours names no version.
SERVER_NAME = "market-hub"
# For HTML that does not set its own policy (the API docs: Swagger UI injects inline styles).
DEFAULT_HTML_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


async def _secure(request: web.BaseRequest, response: web.StreamResponse) -> None:
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Server"] = SERVER_NAME
    if response.content_type == "text/html" and "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = DEFAULT_HTML_POLICY


def add_security_headers(app: web.Application) -> None:
    """On every response this application prepares: REST, pages, static files, Socket.IO, errors."""
    app.on_response_prepare.append(_secure)
