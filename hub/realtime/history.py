"""Recovery: which stored events a client that last saw `since` is owed, or that it must resync.

The publisher writes an event to the history before emitting it, so whatever a client missed
live is there, unless it is older than the history keeps. A seq is taken by writing its event
(store/events.py), so a hole right after `since` means trimmed; it is read again once anyway
before it is taken as gone (then the client is told to resync and reload over REST).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from store.events import EventLog, StoredEvent

IN_FLIGHT_GRACE_SECONDS = 0.2


@dataclass(frozen=True)
class Replay:
    events: list[StoredEvent] = field(default_factory=list)
    # Set when the history no longer holds what was missed: the stream's current seq.
    resync_seq: int | None = None


def as_message(event: StoredEvent) -> dict[str, Any]:
    """A replayed event as the `replay` ack lists it: the pushed payload plus its event name."""
    return {"event": event.event, **event.payload}


class History:
    def __init__(self, log: EventLog) -> None:
        self.log = log

    async def missed(self, stream: str, since: int) -> Replay:
        current = await self.log.current_seq(stream)
        if since == current:
            return Replay()
        if since > current or current - since > self.log.max_events:
            return Replay(resync_seq=current)
        events = await self._contiguous(stream, since)
        if not events:
            await asyncio.sleep(IN_FLIGHT_GRACE_SECONDS)
            events = await self._contiguous(stream, since)
        if not events:
            return Replay(resync_seq=await self.log.current_seq(stream))
        return Replay(events=events)

    async def _contiguous(self, stream: str, since: int) -> list[StoredEvent]:
        """The run since+1, since+2, … up to the first hole (a later event still being written
        arrives live, or is asked for again)."""
        run: list[StoredEvent] = []
        expected = since + 1
        for event in await self.log.after(stream, since, limit=self.log.max_events):
            if event.seq != expected:
                break
            run.append(event)
            expected += 1
        return run
