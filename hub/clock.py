"""Time as a collaborator: the order services ask a Clock, so tests move time instead of
rewriting stored timestamps."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from store.codec import now


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return now()
