"""When a failed delivery is tried again, and when it is given up.

About 5 s, 30 s, 2 min, 10 min, 30 min, 1 h after the attempts that failed, then every 2 h, until
24 h after the event; each delay gets up to ±20 % of jitter, so endpoints that come back are not hit
by every sender at the same instant. `scale` (WEBHOOK_RETRY_SCALE) multiplies every delay and the
24 h horizon (tests run a day of retries in seconds); the 10 s answer window is not scaled.
"""

from __future__ import annotations

import random
from collections.abc import Callable

DELAYS_SECONDS = (5, 30, 120, 600, 1800, 3600)
LATER_EVERY_SECONDS = 7200
HORIZON_SECONDS = 24 * 3600
JITTER = 0.2


class RetrySchedule:
    def __init__(self, scale: float = 1.0, *, jitter: Callable[[], float] | None = None) -> None:
        self.scale = scale
        self._jitter = jitter or (lambda: random.uniform(-JITTER, JITTER))

    @property
    def horizon_ms(self) -> int:
        """How long after its event a delivery is retried (and an endpoint may fail before it is turned off)."""
        return int(HORIZON_SECONDS * self.scale * 1000)

    def delay_ms(self, attempts: int) -> int:
        """The wait after the `attempts`-th failed attempt (1 = the first)."""
        index = max(attempts, 1) - 1
        base = DELAYS_SECONDS[index] if index < len(DELAYS_SECONDS) else LATER_EVERY_SECONDS
        return max(1, int(base * (1 + self._jitter()) * self.scale * 1000))

    def next_attempt_ms(self, *, attempts: int, failed_at_ms: int, give_up_ms: int) -> int | None:
        """When to try again, or None when the next attempt would come after the deadline."""
        at = failed_at_ms + self.delay_ms(attempts)
        return at if at <= give_up_ms else None
