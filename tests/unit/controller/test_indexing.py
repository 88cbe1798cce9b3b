"""Kopf's index readiness wakes its waiters only when the whole set turns on or off."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

from edge_rollout.controller import indexing


async def readiness(objects: int) -> tuple[int, int]:
    """As Kopf pre-populates: a blocker, then per object a toggle that its worker drops before
    waiting for the whole set. Returns (notifications, workers released)."""
    toggles = aiotoggles.ToggleSet(all)
    notified = 0
    notify_all = toggles._condition.notify_all

    def counting() -> None:
        nonlocal notified
        notified += 1
        notify_all()

    toggles._condition.notify_all = counting  # type: ignore[method-assign]
    blocker = await toggles.make_toggle(name="blocker")
    released = 0

    async def worker(toggle: aiotoggles.Toggle) -> None:
        nonlocal released
        await toggles.drop_toggle(toggle)
        await toggles.wait_for(True)
        released += 1

    own = [await toggles.make_toggle(name=str(i)) for i in range(objects)]
    tasks = [asyncio.create_task(worker(t)) for t in own]
    await asyncio.sleep(0.01)
    assert released == 0  # the blocker holds every worker back
    await toggles.drop_toggle(blocker)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    return notified, released


def test_workers_are_released_once_everything_is_indexed_with_few_notifications() -> None:
    indexing.apply()
    try:
        notified, released = asyncio.run(readiness(300))
    finally:
        indexing.revert()
    assert released == 300
    assert notified <= 2


def test_kopf_alone_notifies_on_every_toggle() -> None:
    indexing.revert()
    notified, released = asyncio.run(readiness(300))
    indexing.apply()
    assert released == 300
    assert notified >= 600
