"""Socket.IO `/orders`: a signed-in user's own orders as they move, and `track` of one order."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from handlers.socket_namespace import SERVICE_ERRORS, LiveNamespace, error_reply
from hub.database import database_errors
from hub.errors import NotFound
from hub.keys import order_reader_key
from hub.realtime.streams import ORDERS, user_stream
from hub.schemas.public import OrderPublic
from hub.schemas.realtime import TrackRequest


class OrdersNamespace(LiveNamespace):
    def __init__(self, app: Any) -> None:
        super().__init__(ORDERS, app)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        body = self.parse_auth(auth)
        user = await self.authenticate(body)
        await self.accept(sid, user, [user_stream(user.id)], body)
        return True

    async def on_track(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Ack: the order, when the user may see it (the orders domain decides), else NOT_FOUND."""
        try:
            body = TrackRequest.model_validate(data)
        except ValidationError:
            return error_reply("VALIDATION_ERROR")
        user, _ = await self.session_user(sid)
        try:
            with database_errors():
                order = await self.app[order_reader_key].get(user, body.order_id)
        except NotFound:
            return error_reply("NOT_FOUND")
        except SERVICE_ERRORS:
            return error_reply("UNAVAILABLE")
        return OrderPublic.of(order).model_dump(mode="json")
