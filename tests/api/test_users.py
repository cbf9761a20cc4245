"""/users over HTTP: registration, sign-in, the profile, tokens, and the operator's create-admin."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient

from auth.tokens import ISSUER, TokenIssuer
from hub.keys import store_key
from hub.settings import Settings
from tests.helpers.api import PASSWORD, TEST_SECRET, expect_error, sign_in, sign_up, unique_email

REPO = Path(__file__).resolve().parents[2]
USER_FIELDS = {"id", "email", "name", "role", "locale", "phone", "address", "preferences", "is_active", "created_at"}


def registration(**fields: Any) -> dict[str, Any]:
    return {"email": unique_email(), "name": "Olena", "password": PASSWORD, "confirm_password": PASSWORD, **fields}


async def me(client: TestClient, token: str) -> Any:
    return await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})


async def test_register_sign_in_and_me(client: TestClient) -> None:
    body = registration(locale="ua", phone="+380 44 123 4567", address="Khreshchatyk 1")
    response = await client.post("/api/v1/users/register", json=body)
    assert response.status == 201, await response.text()
    user = await response.json()
    assert set(user) == USER_FIELDS
    assert user["role"] == "customer"
    assert user["is_active"] is True
    assert (user["locale"], user["phone"], user["address"]) == ("ua", "+380 44 123 4567", "Khreshchatyk 1")
    assert datetime.fromisoformat(user["created_at"]).tzinfo is not None

    response = await client.post("/api/v1/users/login", json={"email": body["email"], "password": PASSWORD})
    assert response.status == 200
    reply = await response.json()
    assert reply["token_type"] == "bearer"
    assert reply["expires_in"] == 30 * 60
    assert reply["user"] == user

    response = await me(client, reply["access_token"])
    assert response.status == 200
    assert await response.json() == user


async def test_register_market_admin(client: TestClient) -> None:
    response = await client.post("/api/v1/users/register", json=registration(role="market_admin"))
    assert response.status == 201
    assert (await response.json())["role"] == "market_admin"


async def test_register_super_admin_is_refused(client: TestClient) -> None:
    body = registration(role="super_admin")
    await expect_error(await client.post("/api/v1/users/register", json=body), 403, "FORBIDDEN")
    response = await client.post("/api/v1/users/login", json={"email": body["email"], "password": PASSWORD})
    assert response.status == 401


async def test_email_is_unique_ignoring_case(client: TestClient) -> None:
    email = unique_email("Case")
    assert (await client.post("/api/v1/users/register", json=registration(email=email))).status == 201
    again = registration(email=email.upper())
    await expect_error(await client.post("/api/v1/users/register", json=again), 409, "EMAIL_TAKEN")
    # Signing in ignores the case too.
    account = await sign_in(client, email.swapcase())
    assert account.user["email"] == email


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"password": "short", "confirm_password": "short"}, "password"),
        ({"password": "x" * 129, "confirm_password": "x" * 129}, "password"),
        ({"confirm_password": PASSWORD + "!"}, None),
        ({"email": "not-an-email"}, "email"),
        ({"name": "   "}, "name"),
        ({"locale": "fr"}, "locale"),
        ({"role": "owner"}, "role"),
        # Mass assignment: nothing but the documented fields is accepted.
        ({"is_active": False}, "is_active"),
        ({"verified": True}, "verified"),
        ({"password_hash": "$argon2id$v=19$x"}, "password_hash"),
        ({"hashed_password": "$argon2id$v=19$x"}, "hashed_password"),
        ({"id": "0" * 24}, "id"),
        ({"preferences": {}}, "preferences"),
    ],
)
async def test_register_validation(client: TestClient, fields: dict[str, Any], loc: str | None) -> None:
    response = await client.post("/api/v1/users/register", json=registration(**fields))
    error = await expect_error(response, 422, "VALIDATION_ERROR")
    assert error["details"]
    assert all(set(item) == {"loc", "msg", "type"} for item in error["details"])
    if loc is not None:
        assert [loc] in [item["loc"] for item in error["details"]]


async def test_login_failures_are_401_with_www_authenticate(client: TestClient) -> None:
    account = await sign_up(client)
    for body in (
        {"email": account.email, "password": "wrong password"},
        {"email": unique_email(), "password": PASSWORD},
    ):
        response = await client.post("/api/v1/users/login", json=body)
        await expect_error(response, 401, "UNAUTHORIZED")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_update_me(client: TestClient, method: str) -> None:
    account = await sign_up(client, phone="+380 50 000 0000")
    changes = {"name": "Taras", "locale": "ua", "phone": None, "address": "Lviv", "preferences": {"theme": "dark"}}
    response = await client.request(method, "/api/v1/users/me", json=changes, headers=account.headers)
    assert response.status == 200, await response.text()
    user = await response.json()
    assert {key: user[key] for key in changes} == changes
    assert (user["email"], user["role"]) == (account.email, "customer")
    assert await (await me(client, account.token)).json() == user


async def test_update_me_rejects_what_a_user_may_not_set(client: TestClient) -> None:
    account = await sign_up(client)
    forbidden: list[tuple[dict[str, Any], str]] = [
        ({"role": "super_admin"}, "role"),
        ({"is_active": False}, "is_active"),
        ({"email": "other@example.com"}, "email"),
        ({"password_hash": "x"}, "password_hash"),
        ({"hashed_password": "x"}, "hashed_password"),
        ({"password": "new password 1"}, "password"),
        ({"id": "0" * 24}, "id"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
        ({"name": None}, "name"),
        ({"locale": None}, "locale"),
        ({"preferences": None}, "preferences"),
        ({"name": "Fine", "role": "market_admin"}, "role"),
    ]
    for body, loc in forbidden:
        response = await client.patch("/api/v1/users/me", json=body, headers=account.headers)
        error = await expect_error(response, 422, "VALIDATION_ERROR")
        assert [item["loc"] for item in error["details"]] == [[loc]], body
    # Nothing was half-applied.
    assert await (await me(client, account.token)).json() == account.user


async def test_anonymous_profile_is_401(client: TestClient) -> None:
    for method in ("GET", "PATCH", "PUT"):
        response = await client.request(method, "/api/v1/users/me", json={})
        await expect_error(response, 401, "UNAUTHORIZED")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _forged(kind: str, user_id: str, role: str) -> str:
    now = datetime.now(UTC)
    claims = {"sub": user_id, "role": role, "iat": now, "exp": now + timedelta(minutes=5), "iss": ISSUER}
    issuer = TokenIssuer(TEST_SECRET, "HS256", timedelta(minutes=5))
    header, payload, signature = issuer.issue(user_id, role).split(".")
    builders: dict[str, Callable[[], str]] = {
        "expired": lambda: issuer.issue(user_id, role, now=now - timedelta(hours=1)),
        "alg_none": lambda: jwt.encode(claims, None, algorithm="none"),
        "wrong_key": lambda: jwt.encode(claims, "another-secret-key-that-is-long-enough-012345", algorithm="HS256"),
        "hs512_while_hs256_is_pinned": lambda: jwt.encode(claims, TEST_SECRET * 2, algorithm="HS512"),
        "no_exp": lambda: jwt.encode({k: v for k, v in claims.items() if k != "exp"}, TEST_SECRET, algorithm="HS256"),
        "other_issuer": lambda: jwt.encode({**claims, "iss": "elsewhere"}, TEST_SECRET, algorithm="HS256"),
        "tampered_payload": lambda: ".".join(
            (header, payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB"), signature)
        ),
    }
    return builders[kind]()


@pytest.mark.parametrize(
    "kind",
    ["expired", "alg_none", "wrong_key", "hs512_while_hs256_is_pinned", "no_exp", "other_issuer", "tampered_payload"],
)
async def test_forged_or_expired_tokens_are_401(client: TestClient, kind: str) -> None:
    response = await client.post("/api/v1/users/register", json=registration())
    user_id = (await response.json())["id"]
    control = TokenIssuer(TEST_SECRET, "HS256", timedelta(minutes=5)).issue(user_id, "customer")
    assert (await me(client, control)).status == 200  # the same claims, properly signed, are accepted
    response = await me(client, _forged(kind, user_id, "customer"))
    await expect_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Bearer abc", "Bearer a.b.c", "Bearer ....", "Basic dXNlcjpwYXNz", "token", "Bearer ÿÿ"],
)
async def test_malformed_authorization_is_401(client: TestClient, authorization: str) -> None:
    response = await client.get("/api/v1/users/me", headers={"Authorization": authorization})
    await expect_error(response, 401, "UNAUTHORIZED")


async def test_role_comes_from_the_database_not_the_token(client: TestClient) -> None:
    account = await sign_up(client)
    claims_super = TokenIssuer(TEST_SECRET, "HS256", timedelta(minutes=5)).issue(account.id, "super_admin")
    response = await client.post(
        "/api/v1/markets/" + "a" * 24 + "/verify", headers={"Authorization": f"Bearer {claims_super}"}
    )
    await expect_error(response, 403, "FORBIDDEN")


async def test_tokens_of_deactivated_or_deleted_users_are_401(client: TestClient) -> None:
    account = await sign_up(client)
    users = client.app[store_key].db["users"]
    await users.update_one({"_id": account.id}, {"$set": {"is_active": False}})
    await expect_error(await me(client, account.token), 401, "UNAUTHORIZED")
    response = await client.post("/api/v1/users/login", json={"email": account.email, "password": PASSWORD})
    await expect_error(response, 401, "UNAUTHORIZED")
    await users.delete_one({"_id": account.id})
    await expect_error(await me(client, account.token), 401, "UNAUTHORIZED")


def _create_admin(settings: Settings, email: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "PORT", "HOST"}}
    env.update(
        MONGODB_URL=str(settings.mongodb_url),
        MONGODB_DB=settings.mongodb_db,
        SECRET_KEY=TEST_SECRET,
        PYTHONPATH=str(REPO),
        LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "hub", "create-admin", "--email", email, "--password", password]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_create_admin_cli_creates_then_promotes(client: TestClient, settings: Settings) -> None:
    email = unique_email("admin")
    created = _create_admin(settings, email)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"created super_admin {email}")
    assert (await sign_in(client, email)).role == "super_admin"

    customer = await sign_up(client)
    promoted = _create_admin(settings, customer.email.upper())
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith("promoted super_admin")
    account = await sign_in(client, customer.email)
    assert (account.id, account.role) == (customer.id, "super_admin")

    refused = _create_admin(settings, unique_email("admin"), password="short")
    assert refused.returncode == 1
    assert "password" in refused.stderr
