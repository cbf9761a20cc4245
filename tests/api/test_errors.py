"""Every failure answers the DESIGN.md envelope: malformed or oversized bodies, unknown routes, bad queries."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.helpers.api import expect_error, sign_up

ONE_MIB = 1024 * 1024


@pytest.mark.parametrize(
    "raw", [b"{", b'{"email": }', b"\xff\xfe", b"", b"[]", b'"text"', b"42", b"null", b"[{}]", b"true"]
)
async def test_bodies_that_are_not_a_json_object_are_400(client: TestClient, raw: bytes) -> None:
    response = await client.post("/api/v1/users/register", data=raw, headers={"Content-Type": "application/json"})
    await expect_error(response, 400, "BAD_REQUEST")


async def test_a_body_over_one_mib_is_413(client: TestClient) -> None:
    padding = "x" * (ONE_MIB + 1)
    response = await client.post(
        "/api/v1/users/register",
        data=b'{"name": "' + padding.encode() + b'"}',
        headers={"Content-Type": "application/json"},
    )
    await expect_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_body_just_under_one_mib_is_read(client: TestClient) -> None:
    # Read and validated (422 for its size-limited fields), not refused for its size.
    body = b'{"name": "' + b"x" * (ONE_MIB - 100) + b'"}'
    response = await client.post("/api/v1/users/register", data=body, headers={"Content-Type": "application/json"})
    await expect_error(response, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/api/v1/nope"), ("POST", "/api/v1/users/nope/more"), ("GET", "/api/v1/markets/a/b/c")],
)
async def test_unknown_routes_are_404_envelopes(client: TestClient, method: str, path: str) -> None:
    await expect_error(await client.request(method, path), 404, "NOT_FOUND")


async def test_wrong_method_is_405_envelope(client: TestClient) -> None:
    response = await client.delete("/api/v1/users/register")
    await expect_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in response.headers["Allow"]


PAGE_PARAMS = [{"limit": "0"}, {"limit": "101"}, {"limit": "-1"}, {"limit": "abc"}, {"skip": "-1"}, {"skip": "x"}]


@pytest.mark.parametrize(
    ("path", "params"),
    [("/api/v1/markets", params) for params in [*PAGE_PARAMS, {"verified": "maybe"}, {"unknown": "1"}]]
    + [("/api/v1/products", params) for params in [*PAGE_PARAMS, {"in_stock": "maybe"}, {"market_id": "x"}]],
)
async def test_query_out_of_range_is_422_with_details(client: TestClient, path: str, params: dict[str, str]) -> None:
    name = next(iter(params))
    response = await client.get(path, params=params)
    error = await expect_error(response, 422, "VALIDATION_ERROR")
    details: list[dict[str, Any]] = error["details"]
    assert isinstance(details, list)
    assert details
    for item in details:
        assert set(item) == {"loc", "msg", "type"}
        assert isinstance(item["msg"], str)
        assert isinstance(item["type"], str)
    assert [name] in [item["loc"] for item in details]


async def test_errors_carry_the_request_id(client: TestClient) -> None:
    response = await client.get("/nope", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    response = await client.get("/nope", headers={"X-Request-ID": "bad id\twith junk"})
    assert response.headers["X-Request-ID"] != "bad id\twith junk"


async def test_malformed_id_in_a_body_is_400(client: TestClient) -> None:
    owner = await sign_up(client, "market_admin")
    body = {"market_id": "not-an-id", "name": "Pears", "price_cents": 100, "stock": 1}
    error = await expect_error(
        await client.post("/api/v1/products", json=body, headers=owner.headers), 400, "BAD_REQUEST"
    )
    assert [item["loc"] for item in error["details"]] == [["market_id"]]
    # Mixed with other mistakes it is one 422 listing all of them.
    body["price_cents"] = 0
    response = await client.post("/api/v1/products", json=body, headers=owner.headers)
    error = await expect_error(response, 422, "VALIDATION_ERROR")
    assert sorted(item["loc"][0] for item in error["details"]) == ["market_id", "price_cents"]


async def test_no_token_is_401_before_the_body_is_looked_at(client: TestClient) -> None:
    for body in (b"{not json", b'{"unknown": 1}'):
        response = await client.post("/api/v1/markets", data=body, headers={"Content-Type": "application/json"})
        await expect_error(response, 401, "UNAUTHORIZED")
