"""REST plumbing shared by every handlers module: routes that describe themselves for OpenAPI,
body and query parsing through pydantic, JSON replies, and the signed-in user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from auth.tokens import TokenClaims
from hub.accounts import SignedIn
from hub.errors import BadRequest, Unauthorized, ValidationFailed
from hub.keys import accounts_key
from hub.schemas.common import ID_FORMAT_ERROR

API_PREFIX = "/api/v1"
_INT64 = 2**63
M = TypeVar("M", bound=BaseModel)
Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Header:
    """A request header a route reads: its description and the type that validates it (for OpenAPI)."""

    description: str
    annotation: Any = str


@dataclass(frozen=True)
class Operation:
    """What OpenAPI needs to know of one route; built from the models that validate it."""

    method: str
    path: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    # Other success statuses answering with the same body: status → when.
    also: dict[int, str] = field(default_factory=dict)
    auth: bool = True
    errors: tuple[int, ...] = ()
    headers: dict[str, Header] = field(default_factory=dict)


class ApiRoutes:
    """A RouteTableDef for one handlers module that also records each route's Operation.

    The decorator parses the body and query with the declared models and passes them to the
    handler as `body=` and `query=`, so the models in the spec are the models that validate.
    """

    def __init__(self, tag: str, prefix: str = API_PREFIX) -> None:
        self.tag = tag
        self.prefix = prefix
        self.table = web.RouteTableDef()
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        also: dict[int, str] | None = None,
        auth: bool = True,
        errors: Sequence[int] = (),
        headers: dict[str, Header] | None = None,
    ) -> Callable[[Handler], Handler]:
        full_path = self.prefix + path

        def register(handler: Handler) -> Handler:
            async def endpoint(request: web.Request) -> web.StreamResponse:
                if auth:
                    # Who is asking comes before what they sent: no token is 401, even with a bad body.
                    await current_user(request)
                kwargs: dict[str, Any] = {}
                if body is not None:
                    kwargs["body"] = await read_body(request, body)
                if query is not None:
                    kwargs["query"] = read_query(request, query)
                return await handler(request, **kwargs)

            endpoint.__name__ = handler.__name__
            endpoint.__doc__ = handler.__doc__
            self.table.route(method, full_path)(endpoint)
            self.operations.append(
                Operation(
                    method=method.lower(),
                    path=full_path,
                    summary=summary,
                    tag=self.tag,
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    also=also or {},
                    auth=auth,
                    errors=tuple(errors),
                    headers=headers or {},
                )
            )
            return handler

        return register


def validation_details(error: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(item["loc"]), "msg": item["msg"].removeprefix("Value error, "), "type": item["type"]}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]


async def read_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("Request body must be a JSON object")
    integral, changed = _integral_numbers(data)
    if changed:
        raw = orjson.dumps(integral)
    try:
        # Strictly as JSON types (DESIGN.md): `true` is not an integer, "12" not a number. Query
        # strings (read_query) are text by nature and keep the usual conversions.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        details = validation_details(exc)
        if all(item["type"] == ID_FORMAT_ERROR for item in details):
            raise BadRequest("Malformed id in the request body", details=details) from None
        raise ValidationFailed(details=details) from None


def _integral_numbers(value: Any) -> tuple[Any, bool]:
    """`24.0` is the integer 24 in JSON (and in JSON Schema's `integer`); pydantic's strict mode
    would refuse it. Whether anything was changed, so the common body is not encoded again."""
    if isinstance(value, float) and value.is_integer() and -_INT64 <= value < _INT64:
        return int(value), True
    if isinstance(value, dict):
        changed = False
        items = {}
        for key, item in value.items():
            items[key], item_changed = _integral_numbers(item)
            changed = changed or item_changed
        return (items, True) if changed else (value, False)
    if isinstance(value, list):
        pairs = [_integral_numbers(item) for item in value]
        if any(changed for _, changed in pairs):
            return [item for item, _ in pairs], True
    return value, False


def read_query(request: web.Request, model: type[M]) -> M:
    params: dict[str, str | list[str]] = {}
    for key in request.query:
        values = request.query.getall(key)
        params[key] = values[0] if len(values) == 1 else values
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc)) from None


def _dump(data: Any) -> bytes:
    if isinstance(data, BaseModel):
        return orjson.dumps(data.model_dump(mode="json"))
    if isinstance(data, list) and data and isinstance(data[0], BaseModel):
        return orjson.dumps([item.model_dump(mode="json") for item in data])
    return orjson.dumps(data, default=_fallback)


def _fallback(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dump(data), status=status, headers=headers, content_type="application/json")


def list_response(items: Sequence[BaseModel], total: int) -> web.Response:
    return json_response(list(items), headers={"X-Total-Count": str(total)})


# The request's verified token claims, when the rate limiter has verified them (handlers/middleware.py).
VERIFIED_CLAIMS = "verified_claims"


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def current_user(request: web.Request) -> SignedIn:
    """The signed-in user, cached on the request; 401 otherwise."""
    cached = request.get("user")
    if isinstance(cached, SignedIn):
        return cached
    claims = request.get(VERIFIED_CLAIMS)
    accounts = request.app[accounts_key]
    if isinstance(claims, TokenClaims):  # verified by the rate limiter for this very request
        user, _ = await accounts.authenticate_claims(claims)
    else:
        user = await accounts.authenticate(bearer_token(request))
    request["user"] = user
    return user


async def optional_user(request: web.Request) -> SignedIn | None:
    if bearer_token(request) is None:
        return None
    try:
        return await current_user(request)
    except Unauthorized:
        return None


def list_of(model: type[BaseModel]) -> Any:
    """A response annotation for OpenAPI: a JSON array of `model`."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]
