"""Structured logs: one JSON line per request, the request id round trip, and no tokens in the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.logs import JsonFormatter
from hub.schemas.public import UserPublic
from tests.helpers.api import sign_up


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged while the test runs, formatted and filtered as in production (LOG_LEVEL=INFO).

    `python -m hub` runs without aiohttp's own access log (it would log query strings); the test
    server has it, so it is silenced here as hub.logs.configure_logging does.
    """
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    root, aiohttp_access = logging.getLogger(), logging.getLogger("aiohttp.access")
    previous = root.level, aiohttp_access.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    aiohttp_access.setLevel(logging.WARNING)
    yield output
    root.removeHandler(handler)
    root.setLevel(previous[0])
    aiohttp_access.setLevel(previous[1])


def request_lines(output: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == "hub.access"]


async def test_one_json_line_per_request(client: TestClient, log_output: io.StringIO) -> None:
    account = await sign_up(client)
    response = await client.get("/api/v1/users/me", headers={**account.headers, "X-Request-ID": "trace-42.a:b"})
    assert response.status == 200
    assert response.headers["X-Request-ID"] == "trace-42.a:b"
    missing = await client.get("/api/v1/markets/0123456789abcdef01234567")
    assert missing.status == 404
    generated = missing.headers["X-Request-ID"]
    # An id that is not a plain token (spaces, too long, header tricks) is replaced, not echoed.
    odd = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert odd.headers["X-Request-ID"] != "bad id\twith spaces"

    lines = request_lines(log_output)
    assert len(lines) == 5  # register, login, me, the 404, health
    me = next(line for line in lines if line["request_id"] == "trace-42.a:b")
    assert me["method"] == "GET"
    assert me["route"] == "/api/v1/users/me"
    assert me["path"] == "/api/v1/users/me"
    assert me["status"] == 200
    assert isinstance(me["ms"], int | float)
    assert me["ms"] >= 0
    assert me["user_id"] == account.id
    assert me["level"] == "info"
    assert me["ts"]
    not_found = next(line for line in lines if line["request_id"] == generated)
    assert not_found["status"] == 404
    assert not_found["route"] == "/api/v1/markets/{id}"
    assert not_found["user_id"] is None
    assert [line["status"] for line in lines[:2]] == [201, 200]


async def test_no_tokens_or_passwords_in_logs(client: TestClient, log_output: io.StringIO) -> None:
    account = await sign_up(client)
    await client.get("/api/v1/users/me", headers=account.headers)
    # A token in the query string (where it does not belong) is not logged either: only the path is.
    await client.get(f"/api/v1/markets?token={account.token}")
    # A forged token and a wrong password on sign-in.
    forged = account.token[:-4] + "AAAA"
    await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
    await client.post("/api/v1/users/login", json={"email": account.email, "password": "not-the-password-xyz"})

    text = log_output.getvalue()
    assert request_lines(log_output), "nothing was logged: the test would prove nothing"
    for secret in (account.token, forged, account.token.split(".")[2], "correct horse 42", "not-the-password-xyz"):
        assert secret not in text


async def test_debug_level_leaks_no_password_hash_or_token(client: TestClient) -> None:
    """LOG_LEVEL=DEBUG as configure_logging sets it: the driver's command log stays quiet."""
    from hub.logs import configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    output = io.StringIO()
    try:
        configure_logging("DEBUG")
        root.handlers[0].setStream(output)  # type: ignore[attr-defined]
        account = await sign_up(client)
        assert (await client.get("/api/v1/users/me", headers=account.headers)).status == 200
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = output.getvalue()
    assert "hub.access" in text  # it did log at DEBUG
    assert "argon2" not in text
    assert "password_hash" not in text
    assert account.token not in text


async def test_a_client_gone_before_its_answer_is_a_request_line_not_an_error(
    client: TestClient, log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What aiohttp raises when the peer has closed the connection (in a reconnect storm: clients that
    # gave up during the WebSocket upgrade), injected where /users/me builds its answer.
    account = await sign_up(client)

    def connection_lost(user: Any) -> None:
        raise ConnectionResetError("Connection lost")

    monkeypatch.setattr(UserPublic, "of", connection_lost)
    await client.get("/api/v1/users/me", headers=account.headers)

    records = [json.loads(line) for line in log_output.getvalue().splitlines() if line.strip()]
    assert not [record for record in records if record["level"] in ("error", "critical")], records
    me = request_lines(log_output)[-1]
    assert (me["route"], me["status"]) == ("/api/v1/users/me", 499)
