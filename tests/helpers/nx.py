"""An nx-27017 server process a test may stop and start again; waiting for a port to answer."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from store.embedded import EmbeddedMongo, free_port


def wait_for_port(port: int, *, timeout: float = 20, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered on port {port} within {timeout}s")


class NxServer:
    """An nx-27017 process that a test may stop and start again (same port, same files)."""

    def __init__(self, data_dir: Path) -> None:
        self.embedded = EmbeddedMongo(data_dir, port=free_port())
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.embedded.url

    def start(self) -> None:
        (self.embedded.data_dir / "mongo").mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.embedded.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.embedded.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
