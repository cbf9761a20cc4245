"""Request middlewares: the request id and log line, and the one mapping of errors to the envelope."""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from hub.errors import HubError, NotFound, PayloadTooLarge, RateLimited, Unauthorized, Unavailable
from store.client import UNAVAILABLE_ERRORS

access_log = logging.getLogger("hub.access")
error_log = logging.getLogger("hub.errors")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
}


def route_name(request: web.Request) -> str:
    """The route's template (/api/v1/orders/{id}), so logs and metrics don't explode by id."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    supplied = request.headers.get("X-Request-ID", "")
    request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
    request["request_id"] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    finally:
        user = request.get("user")
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "route": route_name(request),
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "user_id": getattr(user, "id", None),
                "request_id": request_id,
            },
        )


def error_response(error: HubError, request: web.Request) -> web.Response:
    headers = {"X-Request-ID": request.get("request_id", "")}
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="market-hub"'
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return web.json_response(error.envelope(), status=error.status, headers=headers)


@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:  # noqa: PLR0911
    try:
        return await handler(request)
    except HubError as error:
        return error_response(error, request)
    except web.HTTPRequestEntityTooLarge:
        return error_response(PayloadTooLarge("Request body exceeds 1 MiB"), request)
    except web.HTTPNotFound:
        return error_response(NotFound(), request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "BAD_REQUEST" if exc.status < 500 else "INTERNAL_ERROR")
        http_error = HubError(exc.reason, code=code)
        http_error.status = exc.status
        response = error_response(http_error, request)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except UNAVAILABLE_ERRORS as exc:
        error_log.warning("database unavailable", extra={"error": type(exc).__name__, "path": request.path})
        return error_response(Unavailable("The database did not answer; try again shortly"), request)
    except Exception:  # noqa: BLE001 - the last line of defence: log it, answer 500 without details
        error_log.exception("unhandled error", extra={"path": request.path, "request_id": request.get("request_id")})
        return error_response(HubError(), request)
