"""Which browser origins may open a Socket.IO session (python-socketio's `cors_allowed_origins`)."""

from __future__ import annotations

from typing import Any


class OriginPolicy:
    """Which browser origins may open a Socket.IO session: the hub's own origin (the pages it
    serves), and CORS_ORIGINS. Never any origin. X-Forwarded-Proto/Host count only behind a
    trusted proxy (TRUSTED_PROXY_COUNT > 0)."""

    def __init__(self, origins: list[str], *, trust_forwarded: bool) -> None:
        self.origins = frozenset(origins)
        self.trust_forwarded = trust_forwarded

    def __call__(self, origin: str | None, environ: dict[str, Any] | None = None) -> bool:
        if origin in self.origins:
            return True
        return environ is not None and origin in self.own_origins(environ)

    def own_origins(self, environ: dict[str, Any]) -> set[str]:
        host = environ.get("HTTP_HOST")
        if not host:
            return set()
        # Either scheme: behind a TLS-terminating proxy the page is https, the hop to us http.
        own = {f"http://{host}", f"https://{host}"}
        if self.trust_forwarded:
            forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
            forwarded_proto = environ.get("HTTP_X_FORWARDED_PROTO", "http").split(",")[0].strip()
            own.add(f"{forwarded_proto}://{forwarded_host}")
        return own
