"""Stand-ins that fail the way a killed process does."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from store.models import Order

# The `publisher_dies` fixture (tests/conftest.py): `with publisher_dies(): ...`.
PublisherDies = Callable[[], AbstractContextManager[None]]


class KilledPublisher:
    """The process dies after the order write, before anything reaches the history."""

    async def publish_pending(self, order: Order, *, fresh_version: int | None) -> bool:
        raise RuntimeError("killed between the order write and the history write")
