"""The embedded default: `python -m hub` in an empty folder runs its own nx-27017, keeps data and its
secret key under ./var across restarts, and leaves nothing behind when stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from store.embedded import free_port
from tests.helpers.api import PASSWORD, unique_email

REPO = Path(__file__).resolve().parents[2]


def hub_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in {"MONGODB_URL", "MONGODB_DB", "SECRET_KEY", "REDIS_URL", "PORT", "HOST"}}  # fmt: skip
    env.update(PYTHONPATH=str(REPO), LOG_LEVEL="WARNING", **extra)
    return env


class Hub:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        command = [sys.executable, "-m", "hub", "--port", str(self.port)]
        self.process = subprocess.Popen(command, cwd=self.folder, env=hub_env(), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"the hub exited with {self.process.returncode}"
                try:
                    async with session.get(f"{self.url}/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("the hub did not answer /health within 30 s")

    def children(self) -> list[psutil.Process]:
        assert self.process is not None
        return psutil.Process(self.process.pid).children(recursive=True)

    def terminate(self) -> int:
        process, self.process = self.process, None
        assert process is not None
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=20)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            for child in self.children():
                child.kill()
            self.process.kill()
            self.process.wait()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    folder = tmp_path / "fresh"
    folder.mkdir()
    server = Hub(folder)
    yield server
    server.kill()


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def nx_port(process: psutil.Process) -> int:
    command = process.cmdline()
    return int(command[command.index("--port") + 1])


async def call(method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def test_embedded_hub_keeps_data_and_key_and_leaves_nothing_behind(hub: Hub) -> None:
    await hub.start()
    (database,) = hub.children()
    port = nx_port(database)
    assert (hub.folder / "var" / "secret_key").is_file()
    assert (hub.folder / "var" / "mongo").is_dir()

    email = unique_email()
    body = {"email": email, "name": "Olena", "password": PASSWORD, "confirm_password": PASSWORD}
    status, _ = await call("POST", f"{hub.url}/api/v1/users/register", json=body)
    assert status == 201
    status, reply = await call("POST", f"{hub.url}/api/v1/users/login", json={"email": email, "password": PASSWORD})
    assert status == 200
    token = reply["access_token"]
    status, _ = await call("GET", f"{hub.url}/ready")
    assert status == 200
    key = (hub.folder / "var" / "secret_key").read_text()

    assert hub.terminate() == 0
    database.wait(timeout=10)
    assert not database.is_running()
    assert port_is_closed(port)

    await hub.start()
    assert (hub.folder / "var" / "secret_key").read_text() == key
    status, _ = await call("POST", f"{hub.url}/api/v1/users/login", json={"email": email, "password": PASSWORD})
    assert status == 200
    # A token from before the restart is still good: the key was kept.
    status, me = await call("GET", f"{hub.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert (status, me["email"]) == (200, email)

    children = hub.children()
    ports = [nx_port(child) for child in children]
    assert hub.terminate() == 0
    psutil.wait_procs(children, timeout=10)
    assert not [child for child in children if child.is_running()]
    assert all(port_is_closed(port) for port in ports)


@pytest.mark.parametrize(("name", "value"), [("PORT", "abc"), ("JWT_ALGORITHM", "none"), ("SECRET_KEY", "short")])
def test_a_bad_setting_stops_start_up_with_one_line(tmp_path: Path, name: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub"],
        cwd=tmp_path,
        env=hub_env(**{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert not (tmp_path / "var").exists()  # nothing was started


def create_admin(folder: Path, email: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "hub", "create-admin", "--email", email, "--password", PASSWORD]
    return subprocess.run(command, cwd=folder, env=hub_env(**env), capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip


async def test_create_admin_works_while_the_embedded_hub_runs(hub: Hub) -> None:
    await hub.start()
    email = unique_email("root")
    result = create_admin(hub.folder, email)
    assert result.returncode == 0, result.stderr
    assert f"created super_admin {email}" in result.stdout
    # Made in the running hub's database: it signs in there and administers users at once.
    status, reply = await call("POST", f"{hub.url}/api/v1/users/login", json={"email": email, "password": PASSWORD})
    assert (status, reply["user"]["role"]) == (200, "super_admin")
    headers = {"Authorization": f"Bearer {reply['access_token']}"}
    status, users = await call("GET", f"{hub.url}/api/v1/users", headers=headers)
    assert status == 200
    assert [user["email"] for user in users] == [email]
    assert len(hub.children()) == 1  # no second database was started
    assert hub.terminate() == 0
    assert not (hub.folder / "var" / "nx-27017.address.json").exists()


def test_create_admin_without_a_database_says_so_in_one_line(tmp_path: Path) -> None:
    closed = free_port()
    result = create_admin(tmp_path, unique_email("root"), MONGODB_URL=f"mongodb://127.0.0.1:{closed}",
                          SECRET_KEY="x" * 40, DB_TIMEOUT_SECONDS="1")  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "database" in lines[0]
    assert f"127.0.0.1:{closed}" in lines[0]
