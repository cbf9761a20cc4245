"""The shared per-second timers (hub/realtime/timer_wheel.py) that replace a timer per connection."""

from __future__ import annotations

import asyncio

import pytest

from hub.realtime.timer_wheel import TimerWheel


async def _until(fired: list[str], count: int) -> None:
    while len(fired) < count:
        await asyncio.sleep(0.05)


async def test_callbacks_due_in_the_same_second_share_one_timer() -> None:
    wheel = TimerWheel()
    fired: list[str] = []
    seconds = {wheel.call_later(0.01, name, lambda name=name: fired.append(name)) for name in ("a", "b")}
    assert len(seconds) == 1 and len(wheel) == 2
    await asyncio.wait_for(_until(fired, 2), 3)
    assert sorted(fired) == ["a", "b"] and len(wheel) == 0


async def test_a_cancelled_callback_does_not_run() -> None:
    wheel = TimerWheel()
    fired: list[str] = []
    second = wheel.call_later(0.01, "cancelled", lambda: fired.append("cancelled"))
    wheel.call_later(0.01, "kept", lambda: fired.append("kept"))
    wheel.cancel(second, "cancelled")
    await asyncio.wait_for(_until(fired, 1), 3)
    assert fired == ["kept"] and len(wheel) == 0


async def test_a_failing_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    wheel = TimerWheel()
    fired: list[str] = []

    def fail() -> None:
        raise RuntimeError("boom")

    wheel.call_later(0.01, "failing", fail)
    wheel.call_later(0.01, "kept", lambda: fired.append("kept"))
    await asyncio.wait_for(_until(fired, 1), 3)
    assert fired == ["kept"]
    assert "timer callback failed" in caplog.text
