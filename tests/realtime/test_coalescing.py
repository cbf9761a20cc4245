"""The coalescing behind live stats and live stock (hub/realtime/coalescing.py): pushes of a key
are spaced by the interval, nothing marked is lost, and a mark is pushed soon after it."""

from __future__ import annotations

import asyncio
import itertools

from hub.realtime.coalescing import CoalescedPushes

INTERVAL = 0.05


async def test_marks_are_coalesced_spaced_and_none_is_lost() -> None:
    loop = asyncio.get_running_loop()
    pushes: list[tuple[float, float, str, set[int]]] = []
    all_pushed = asyncio.Event()

    async def push(key: str, items: set[int]) -> None:
        started = loop.time()
        await asyncio.sleep(0.01)  # a push takes time; marks made meanwhile wait for the next one
        pushes.append((started, loop.time(), key, items))
        if 99 in set().union(*(pushed for *_, pushed in pushes)):
            all_pushed.set()

    coalesced: CoalescedPushes[int] = CoalescedPushes(push, interval=INTERVAL)
    last_marked = 0.0
    for item in range(100):
        coalesced.mark("market-a", [item])
        coalesced.mark("market-b")
        last_marked = loop.time()
        await asyncio.sleep(0.003)
    await asyncio.wait_for(all_pushed.wait(), 2)
    await asyncio.sleep(0)  # let market-b's last push run too
    await coalesced.close()

    of_a = [push for push in pushes if push[2] == "market-a"]
    assert set().union(*(items for *_, items in of_a)) == set(range(100))
    assert 3 <= len(of_a) < 100  # coalesced, yet pushed all along
    for (_, ended, *_), (started, *_) in itertools.pairwise(of_a):
        assert started - ended >= INTERVAL * 0.99
    assert 99 in of_a[-1][3] and of_a[-1][0] >= last_marked  # the last mark went out in a push after it
    assert all(items == set() for _, _, key, items in pushes if key == "market-b")
    assert any(key == "market-b" for _, _, key, _ in pushes)


async def test_close_stops_pending_pushes() -> None:
    pushed: list[str] = []

    async def push(key: str, items: set[int]) -> None:
        pushed.append(key)

    coalesced: CoalescedPushes[int] = CoalescedPushes(push, interval=60)
    coalesced.mark("market-a", [1])
    await asyncio.sleep(0.01)
    coalesced.mark("market-a", [2])  # due in a minute
    await asyncio.wait_for(coalesced.close(), 1)
    assert pushed == ["market-a"]
