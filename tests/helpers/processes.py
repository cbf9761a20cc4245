"""Real processes for multi-instance tests: hubs (`python -m hub`) and a private redis-server.

Reusable by any test (topology, nginx, benchmark smoke tests):

    from tests.helpers.processes import HubProcess, RedisServer, hub_env   # fixtures: hubs, private_redis

    def test_x(hubs, db_name):
        a = hubs.start(db_name=db_name, redis_url=..., redis_channel=...)
        ...  # a.url, a.port; a.stop() sends SIGTERM (hubs stops the rest at teardown)

Each hub is `python -m hub` with MONGODB_URL, MONGODB_DB, SECRET_KEY, REDIS_URL, REDIS_CHANNEL,
PORT (and any extra variables), started on a free port and ready once /health answers. Its
output goes to a log file under the test's tmp dir; `tail()` shows the end of it on failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.embedded import free_port
from tests.helpers.api import TEST_SECRET
from tests.helpers.nx import NxServer, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


def hub_env(*, mongo_url: str, db_name: str, port: int, redis_url: str | None = None,
            redis_channel: str | None = None, **extra: str) -> dict[str, str]:  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MONGODB_", "REDIS_"))}
    env.update({"MONGODB_URL": mongo_url, "MONGODB_DB": db_name, "SECRET_KEY": TEST_SECRET, "PORT": str(port),
                "HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})  # fmt: skip
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["REDIS_CHANNEL"] = redis_channel or f"test-{uuid.uuid4().hex[:12]}"
    env.update({key.upper(): str(value) for key, value in extra.items()})
    return env


class HubProcess:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["PORT"])
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> HubProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub"], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"hub exited with {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise TimeoutError(f"hub on port {self.port} not healthy within {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL if it does not end in time. The exit code."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return process.returncode if process else None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class HubFleet:
    """Starts hubs for one test and stops them all at its end."""

    def __init__(self, mongo_url: str, log_dir: Path) -> None:
        self.mongo_url = mongo_url
        self.log_dir = log_dir
        self.hubs: list[HubProcess] = []

    def start(self, *, db_name: str, redis_url: str | None = None, redis_channel: str | None = None,
              **extra: str) -> HubProcess:  # fmt: skip
        port = free_port()
        env = hub_env(mongo_url=self.mongo_url, db_name=db_name, port=port, redis_url=redis_url,
                      redis_channel=redis_channel, **extra)  # fmt: skip
        hub = HubProcess(env, self.log_dir / f"hub-{port}.log")
        self.hubs.append(hub)
        return hub.start()

    def stop_all(self) -> None:
        for hub in self.hubs:
            hub.stop()


class RedisServer:
    """A redis-server of the test's own, on a free port, without persistence; stop() and start()
    again on the same port simulate an outage."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def hubs(nx_server: NxServer, tmp_path: Path) -> Iterator[HubFleet]:
    fleet = HubFleet(os.environ.get("MONGODB_URL") or nx_server.url, tmp_path)
    yield fleet
    fleet.stop_all()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()
