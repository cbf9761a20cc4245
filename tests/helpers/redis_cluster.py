"""A Redis Cluster of three masters (no replicas) of the test's own: Debian's redis-server with
`--cluster-enabled yes` on free loopback ports, its files in the test's temp dir, stopped at teardown.

    def test_x(redis_cluster: RedisClusterProcesses) -> None:
        url = redis_cluster.url   # redis://127.0.0.1:<port of the first master>/0
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.embedded import free_port
from tests.helpers.nx import wait_for_port

MASTERS = 3
READY_TIMEOUT_SECONDS = 30
BUS_PORT_OFFSET = 10_000


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    while True:
        port = free_port()
        if port + BUS_PORT_OFFSET <= 65535 and _bindable(port + BUS_PORT_OFFSET):
            return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RedisClusterProcesses:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ports = [cluster_port() for _ in range(MASTERS)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisClusterProcesses:
        for port in self.ports:
            node_dir = self.directory / str(port)
            node_dir.mkdir(parents=True)
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                       "--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
                       "--dir", str(node_dir)]  # fmt: skip
            log = (node_dir / "redis.log").open("wb")
            self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        for port, process in zip(self.ports, self.processes, strict=True):
            wait_for_port(port, process=process)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=READY_TIMEOUT_SECONDS)  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not all(self._state_ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)  # polls a state that has no event to await
        return self

    @staticmethod
    def _state_ok(port: int) -> bool:
        reply = subprocess.run(
            ["redis-cli", "-p", str(port), "cluster", "info"], check=False, capture_output=True, timeout=5
        )
        return b"cluster_state:ok" in reply.stdout

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterProcesses]:
    cluster = RedisClusterProcesses(tmp_path / "redis-cluster").start()
    yield cluster
    cluster.stop()
