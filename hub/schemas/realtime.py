"""What Socket.IO clients send: the connect `auth` object and the events with an ack."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from hub.schemas.common import Input

StreamName = Annotated[str, Field(min_length=1, max_length=64)]


class ConnectAuth(BaseModel):
    """`auth` of a connection. Unknown keys are ignored: browsers' clients may add their own."""

    model_config = ConfigDict(extra="ignore")

    token: str | None = Field(default=None, max_length=4096)
    market_id: str | None = Field(default=None, max_length=64)
    # {stream: last seq seen}: what was missed is replayed before live events.
    since: dict[StreamName, Annotated[int, Field(ge=0)]] = Field(default_factory=dict, max_length=16)
    # Set by the server once the token is verified (never from the client): when the connection ends.
    _expires_at: datetime | None = PrivateAttr(default=None)

    @property
    def expires_at(self) -> datetime | None:
        return self._expires_at

    @expires_at.setter
    def expires_at(self, value: datetime | None) -> None:
        self._expires_at = value


class ReplayRequest(Input):
    stream: StreamName
    since: int = Field(ge=0)


class TrackRequest(Input):
    order_id: str = Field(max_length=64)


class RefreshRequest(Input):
    """`auth:refresh`: a fresh token of the connection's own user."""

    token: str = Field(min_length=1, max_length=4096)
