"""/api/openapi.json is a valid OpenAPI 3.1 document for every route; /api/docs works without the internet."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from handlers.http import API_PREFIX


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
