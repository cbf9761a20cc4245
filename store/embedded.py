"""The embedded default database: an nx-27017 child process on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# Where a running embedded server says where it listens, so that another process on the same data
# (`python -m hub create-admin`) uses it instead of starting a second server on the same files.
ADDRESS_FILE = "nx-27017.address.json"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded server running on `data_dir`, if one is (its process is alive)."""
    try:
        address = json.loads((data_dir / ADDRESS_FILE).read_text())
        pid, url = int(address["pid"]), str(address["url"])
        os.kill(pid, 0)  # signal 0: only "does it exist"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If the hub is killed outright (SIGKILL), the kernel stops the database too: no orphan.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedMongo:
    """Starts nx-27017 with its files under `data_dir`, waits until it answers, stops it."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        # The interpreter itself, not a console-script shim, so signals reach the server directly.
        return [
            sys.executable, "-c", "from nx_27017.nx_27017 import main; main()",
            "--data-dir", str(self.data_dir / "mongo"),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--log-file", str(self.data_dir / "nx-27017.log"),
            "--pid-file", str(self.data_dir / "nx-27017.pid"),
        ]  # fmt: skip

    async def start(self, *, timeout_seconds: float = 20) -> str:
        (self.data_dir / "mongo").mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own command line; fork+exec is quick
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while loop.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nx-27017 exited with {self.process.returncode}; see {self.data_dir}/nx-27017.log")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            log.info("embedded database listening", extra={"port": self.port, "data_dir": str(self.data_dir)})
            self._write_address(self.process.pid)
            return self.url
        await self.stop()
        raise RuntimeError(f"nx-27017 did not answer on port {self.port} within {timeout_seconds}s")

    def _write_address(self, pid: int) -> None:
        staged = self.data_dir / f"{ADDRESS_FILE}.{pid}"
        staged.write_text(json.dumps({"url": self.url, "pid": pid}))
        staged.replace(self.data_dir / ADDRESS_FILE)  # atomic: a reader sees the old file or the new one

    async def stop(self, *, timeout_seconds: float = 5) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.data_dir / ADDRESS_FILE)
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), timeout_seconds)
        except TimeoutError:
            process.kill()
            await asyncio.to_thread(process.wait)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.data_dir / "nx-27017.pid")
