"""Ending live connections when what let them in is gone: a user deactivated or given another role,
a market deleted. The decision travels like an event: an emit of REVOKE to a room (the user's
`account:{id}` room in every namespace, or a market's room on /dashboard), which python-socketio
fans out through Redis to every instance; each instance's local delivery (LocalFanout.emit in
hub/realtime/server.py) recognises REVOKE and disconnects its own participants of that room
instead of sending them a frame. So it needs nothing more than events do: wherever an event for
that room would be delivered, the revocation is carried out."""

from __future__ import annotations

from typing import Literal, Protocol

import socketio

from hub.realtime.streams import DASHBOARD, ORDERS, account_room, market_stream

# The control event, never sent to a client as such; clients receive AUTH_REVOKED then a disconnect.
REVOKE = "hub:revoke"
AUTH_REVOKED = "auth:revoked"
AUTH_EXPIRED = "auth:expired"
# Namespaces whose connections belong to a signed-in user.
SIGNED_IN_NAMESPACES = (DASHBOARD, ORDERS)

Reason = Literal["deactivated", "role_changed", "market_deleted"]


class Revoker(Protocol):
    async def revoke_user(self, user_id: str, reason: Reason) -> None: ...

    async def revoke_market(self, market_id: str, reason: Reason) -> None: ...


class Revocations:
    """The Revoker of a running hub: emits REVOKE through the Socket.IO server's manager."""

    def __init__(self, server: socketio.AsyncServer) -> None:
        self.server = server

    async def revoke_user(self, user_id: str, reason: Reason) -> None:
        for namespace in SIGNED_IN_NAMESPACES:
            await self.server.emit(REVOKE, {"reason": reason}, room=account_room(user_id), namespace=namespace)

    async def revoke_market(self, market_id: str, reason: Reason) -> None:
        await self.server.emit(REVOKE, {"reason": reason}, room=market_stream(market_id), namespace=DASHBOARD)


class NoRevocations:
    """For a process without live connections (the create-admin command)."""

    async def revoke_user(self, user_id: str, reason: Reason) -> None:
        return None

    async def revoke_market(self, market_id: str, reason: Reason) -> None:
        return None
