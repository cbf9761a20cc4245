"""/api/openapi.json is a valid OpenAPI 3.1 document for every route; /api/docs works without the internet."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from handlers.http import API_PREFIX
from tests.helpers.api import expect_error, make_market, sign_up


async def test_spec_is_valid_and_covers_every_route(client: TestClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    spec = await response.json()
    validate(spec)
    assert re.fullmatch(r"3\.1\.\d+", spec["openapi"])

    registered = {
        (resource.canonical, route.method.lower())
        for resource in client.app.router.resources()
        if resource.canonical.startswith(API_PREFIX)
        for route in resource
        if route.method not in {"HEAD", "OPTIONS", "*"}
    }
    documented = {(path, method) for path, operations in spec["paths"].items() for method in operations}
    assert len(registered) >= 17
    assert registered <= documented
    assert {path for path, _ in documented if not path.startswith(API_PREFIX)} >= {"/health", "/ready"}

    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"
    }  # fmt: skip
    paths = spec["paths"]
    assert paths[f"{API_PREFIX}/markets"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in paths[f"{API_PREFIX}/markets"]["get"]
    assert "X-Total-Count" in paths[f"{API_PREFIX}/products"]["get"]["responses"]["200"]["headers"]
    # The request models are the ones that validate: unknown fields are refused in the schema too.
    schemas = spec["components"]["schemas"]
    body_ref = paths[f"{API_PREFIX}/users/register"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    register = schemas[body_ref["$ref"].rsplit("/", 1)[1]]
    assert register["additionalProperties"] is False
    assert "password_hash" not in schemas["User"]["properties"]


async def test_docs_page_loads_its_assets_from_the_hub(client: TestClient) -> None:
    response = await client.get("/api/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = await response.text()
    assert not re.search(r"https?://", page)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(asset.endswith(".js") for asset in assets)
    assert any(asset.endswith(".css") for asset in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        loaded = await client.get(asset)
        assert loaded.status == 200, asset
        assert len(await loaded.read()) > 100, asset


async def test_health_and_ready(client: TestClient) -> None:
    health = await client.get("/health")
    assert (health.status, await health.json()) == (200, {"status": "ok"})
    ready = await client.get("/ready")
    assert ready.status == 200
    assert (await ready.json())["checks"]["database"] == "ok"


def _body_schema(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    ref = spec["paths"][f"{API_PREFIX}{path}"][method]["requestBody"]["content"]["application/json"]["schema"]
    return dict(spec["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]])


def _nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(branch.get("type") == "null" for branch in prop.get("anyOf", []))


async def test_the_document_says_exactly_what_the_server_accepts(client: TestClient) -> None:
    spec = await (await client.get("/api/openapi.json")).json()
    # Fields a PATCH may leave out but not null: the document does not call them nullable.
    for method, path, fields in (
        ("patch", "/markets/{id}", ("name", "contact_email", "currency", "business_hours", "is_active")),
        ("patch", "/products/{id}", ("name", "price_cents", "stock", "is_available")),
        ("patch", "/users/me", ("name", "locale", "preferences")),
        ("patch", "/users/{id}", ("is_active", "role")),
    ):
        properties = _body_schema(spec, method, path)["properties"]
        for field in fields:
            assert not _nullable(properties[field]), (path, field, properties[field])
            assert properties[field].get("default", "absent") is not None, (path, field)
    # ... while those that null clears stay nullable.
    assert _nullable(_body_schema(spec, "patch", "/products/{id}")["properties"]["category"])

    password = _body_schema(spec, "post", "/users/register")["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 128)
    market = _body_schema(spec, "post", "/markets")["properties"]
    hours = next(branch for branch in market["business_hours"]["anyOf"] if branch.get("type") == "object")
    assert hours["propertyNames"]["pattern"] == "^[^$.\\x00]*$"
    assert market["delivery_options"]["uniqueItems"] is True
    parameters = spec["paths"][f"{API_PREFIX}/analytics/markets/{{id}}"]["get"]["parameters"]
    to = next(parameter for parameter in parameters if parameter["name"] == "to")["schema"]
    assert {"type": "string", "format": "date-time"} in to["anyOf"]

    # And the server agrees: a number is not a timestamp, a weak password is refused.
    owner = await sign_up(client, "market_admin")
    market_id = (await make_market(client, owner))["id"]
    for to_value in ("0.5", "1700000000", "2026-01-01"):
        response = await client.get(f"{API_PREFIX}/analytics/markets/{market_id}", params={"to": to_value},
                                    headers=owner.headers)  # fmt: skip
        await expect_error(response, 422, "VALIDATION_ERROR")
    response = await client.get(f"{API_PREFIX}/analytics/markets/{market_id}", params={"to": "2026-01-01T00:00:00Z"},
                                headers=owner.headers)  # fmt: skip
    assert response.status == 200, await response.text()
