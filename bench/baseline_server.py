"""Bare python-socketio baseline: AsyncServer (aiohttp) + AsyncRedisManager, no auth, no history.

Run: python bench/baseline_server.py --port 8101 --redis-url redis://127.0.0.1:6379/9 --channel bench-base

- Namespace ``/dashboard``: on connect the client joins room ``market:{auth.market_id}``.
- ``POST /emit`` ``{market_id, order}`` emits ``order:created`` ``{stream, seq, order}`` to that room
  (through Redis, so every instance sharing the channel delivers it) and answers ``{"emitted_at": ...}``.
- ``GET /health`` answers ``{"ok": true, "pid", "clients", "emitted"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import defaultdict
from typing import Any

import socketio  # type: ignore[import-untyped,unused-ignore]
from aiohttp import web

NAMESPACE = "/dashboard"


class Baseline:
    """State of one baseline instance."""

    def __init__(self, redis_url: str, channel: str) -> None:
        mgr = socketio.AsyncRedisManager(redis_url, channel=channel)
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=mgr,
            cors_allowed_origins=[],
            logger=False,
            engineio_logger=False,
        )
        self.clients = 0
        self.emitted = 0
        self.seq: defaultdict[str, int] = defaultdict(int)
        self.sio.on("connect", self.on_connect, namespace=NAMESPACE)
        self.sio.on("disconnect", self.on_disconnect, namespace=NAMESPACE)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        market_id = auth.get("market_id") if isinstance(auth, dict) else None
        if not market_id:
            raise socketio.exceptions.ConnectionRefusedError({"message": "market_id required"})
        await self.sio.enter_room(sid, f"market:{market_id}", namespace=NAMESPACE)
        self.clients += 1

    async def on_disconnect(self, sid: str, *args: Any) -> None:
        self.clients -= 1

    async def emit(self, request: web.Request) -> web.Response:
        body = await request.json()
        market_id = str(body["market_id"])
        stream = f"market:{market_id}"
        self.seq[stream] += 1
        emitted_at = time.time()
        payload = {
            "stream": stream,
            "seq": self.seq[stream],
            "order": body.get("order"),
        }
        await self.sio.emit("order:created", payload, room=stream, namespace=NAMESPACE)
        self.emitted += 1
        return web.json_response({"emitted_at": emitted_at, "seq": payload["seq"]})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "ok": True,
                "pid": os.getpid(),
                "clients": self.clients,
                "emitted": self.emitted,
            }
        )

    def app(self) -> web.Application:
        application = web.Application()
        self.sio.attach(application)
        application.router.add_post("/emit", self.emit)
        application.router.add_get("/health", self.health)
        return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--channel", default="bench-baseline")
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the benchmark server binds to loopback only")
    if not args.no_uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    web.run_app(
        Baseline(args.redis_url, args.channel).app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
    )


if __name__ == "__main__":
    main()
