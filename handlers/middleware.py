"""Request middlewares: the request id, log line and metrics; the one mapping of errors to the envelope;
the rate limits."""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from auth.tokens import InvalidToken
from handlers.http import API_PREFIX, VERIFIED_CLAIMS, bearer_token
from hub import ratelimit
from hub.client_ip import client_ip
from hub.database import database_errors
from hub.errors import (
    BadRequest,
    DatabaseUnavailable,
    HubError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from hub.keys import accounts_key, drain_key, engineio_requests_key, metrics_key, request_limiter_key, settings_key

access_log = logging.getLogger("hub.access")
error_log = logging.getLogger("hub.errors")

# nginx's status for a request whose client closed the connection first; never sent to anyone.
CLIENT_CLOSED_REQUEST = 499
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
    drain = request.app.get(drain_key)
    try:
        # Shutdown waits for REST requests; Socket.IO connections are disconnected instead.
        with drain.track() if drain and not request.path.startswith(SOCKET_IO_PREFIX) else contextlib.nullcontext():
            response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        if drain is not None and drain.draining:
            response.force_close()  # keep-alive clients move to another instance
        return response
    except web.HTTPException as exc:  # redirects and the like, passed through by error_envelope
        status = exc.status
        raise
    finally:
        seconds = time.perf_counter() - started
        route = route_name(request)
        if access_log.isEnabledFor(logging.INFO):  # the record is not even built below the level in force
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": status,
                    "ms": round(seconds * 1000, 2),
                    "user_id": getattr(request.get("user"), "id", None),
                    "request_id": request_id,
                },
            )
        metrics = request.app.get(metrics_key)
        if metrics is not None:
            metrics.observe_request(request.method, route, status, seconds)


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
        with database_errors():
            return await handler(request)
    except DatabaseUnavailable as error:
        cause = type(error.__cause__).__name__
        error_log.warning("database unavailable", extra={"error": cause, "path": request.path})
        _count_database_error(request)
        return error_response(error, request)
    except HubError as error:
        if isinstance(error, Unavailable):
            _count_database_error(request)
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
    except ConnectionResetError:
        # The client went away before its answer (in a reconnect storm, clients that gave up during the
        # WebSocket upgrade): nothing is wrong with the server and nobody is left to answer. Logged by the
        # request line with nginx's "client closed request" status, not as an error.
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    except Exception:  # noqa: BLE001 - the last line of defence: log it, answer 500 without details
        error_log.exception("unhandled error", extra={"path": request.path, "request_id": request.get("request_id")})
        return error_response(HubError(), request)


def _count_database_error(request: web.Request) -> None:
    metrics = request.app.get(metrics_key)
    if metrics is not None:
        metrics.database_errors.inc()


LOGIN_PATH = f"{API_PREFIX}/users/login"
SOCKET_IO_PREFIX = "/socket.io/"


def _is_limited(request: web.Request) -> bool:
    """The API and new Socket.IO sessions count; pages, assets, docs, /health, /ready and /metrics do not.

    Requests inside an established Engine.IO session (polls, posts, the WebSocket upgrade) are not
    counted: the session was counted once, when it was opened. They are limited to one of each kind
    in flight per session instead (`rate_limit`, hub/realtime/session_requests.py).
    """
    if request.method == "OPTIONS":  # CORS preflight: the request that follows is counted
        return False
    if request.path.startswith(SOCKET_IO_PREFIX):
        return "sid" not in request.query
    return request.path.startswith(API_PREFIX + "/")


def _token_user_id(request: web.Request) -> str | None:
    """The user a valid token names (signature and expiry checked, no database read). The claims
    are kept on the request: the handler's sign-in check does not verify the token again."""
    token = bearer_token(request)
    accounts = request.app.get(accounts_key)
    if token is None or accounts is None:
        return None
    try:
        claims = accounts.tokens.verify(token)
    except InvalidToken:
        return None
    request[VERIFIED_CLAIMS] = claims
    return claims.user_id


async def _login_email(request: web.Request) -> str | None:
    """The email of a sign-in body. aiohttp keeps what read() returned, so the handler reads it again."""
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None
    email = data.get("email") if isinstance(data, dict) else None
    return email if isinstance(email, str) and email.strip() else None


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(SOCKET_IO_PREFIX) and (sid := request.query.get("sid")) is not None:
        return await _inside_session(request, handler, sid)
    limiter = request.app.get(request_limiter_key)
    if limiter is None or not _is_limited(request):
        return await handler(request)
    settings = request.app[settings_key]
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    identities = {
        ratelimit.IP: client_ip(
            peer[0] if isinstance(peer, tuple) else None,
            request.headers.getall("X-Forwarded-For", []),
            settings.trusted_proxy_count,
        )
    }
    if (user_id := _token_user_id(request)) is not None:
        identities[ratelimit.USER] = user_id
    if request.method == "POST" and request.path == LOGIN_PATH and (email := await _login_email(request)):
        identities[ratelimit.EMAIL] = ratelimit.email_identity(email)
    await limiter.hit(identities)
    return await handler(request)


async def _inside_session(request: web.Request, handler: Handler, sid: str) -> web.StreamResponse:
    sessions = request.app.get(engineio_requests_key)
    if sessions is None:
        return await handler(request)
    with sessions.one_at_a_time(sid, request.method, request.query.get("transport", "")) as alone:
        if not alone:
            raise BadRequest("Another request of this kind is in flight for this session")
        return await handler(request)
