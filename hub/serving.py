"""Serving an app until SIGTERM/SIGINT, then shutting down gracefully.

1. stop accepting connections (the listening socket is closed: new connections are refused, so
   a proxy tries another instance);
2. drain: run the drain hooks (Socket.IO clients are disconnected and reconnect elsewhere), let
   requests in flight finish for up to SHUTDOWN_TIMEOUT_SECONDS, answer them with
   `Connection: close`;
3. aiohttp's cleanup: idle connections closed, on_shutdown, what is left cancelled after
   CLEANUP_TIMEOUT_SECONDS, then cleanup_ctx (database, Redis) in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from hub.drain import Drain
from hub.settings import Settings

log = logging.getLogger(__name__)

CLEANUP_TIMEOUT_SECONDS = 2.0


async def serve_until_stopped(app: web.Application, drain: Drain, settings: Settings) -> None:
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=CLEANUP_TIMEOUT_SECONDS)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("serving", extra={"host": settings.host, "port": settings.port})
        await stop.wait()
        log.info("shutting down", extra={"timeout_s": settings.shutdown_timeout_seconds})
        await site.stop()
        await drain.start()
        await drain.wait_idle(settings.shutdown_timeout_seconds)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    log.info("stopped")
