"""Kopf's index pre-population, made linear in the number of indexed objects.

Before any handler runs, Kopf waits until every Node and EdgeNode is in its index: each object's
worker adds an "indexed" toggle to one set, drops it when indexed, then waits until the whole set
is on. Kopf 1.45 wakes every waiting worker on every add and drop (`notify_all`), so N objects
cost O(N^2) wake-ups: operator start took 6 s at 1,000 nodes, 37 s at 2,000 and 460 s at 5,000
(bench/operator_scale). Here the set wakes its waiters only when its aggregate state changes,
which is all they wait for; toggles' own changes still notify as before. Must not change
anything else in Kopf; `apply()` is idempotent and runs when the handlers module is imported.
"""

from __future__ import annotations

from typing import Any

from kopf._cogs.aiokits import aiotoggles

_ORIGINAL = (aiotoggles.ToggleSet.make_toggle, aiotoggles.ToggleSet.drop_toggle)


async def _make_toggle(
    self: aiotoggles.ToggleSet, __val: bool = False, *, name: str | None = None
) -> aiotoggles.Toggle:
    toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggle(self: aiotoggles.ToggleSet, toggle: aiotoggles.Toggle) -> None:
    async with self._condition:
        if toggle not in self._toggles:
            return
        before = self.is_on()
        self._toggles.discard(toggle)
        if self.is_on() != before:
            self._condition.notify_all()


def apply() -> None:
    """Install the linear versions (once)."""
    cls: Any = aiotoggles.ToggleSet
    cls.make_toggle = _make_toggle
    cls.drop_toggle = _drop_toggle


def revert() -> None:
    """Kopf's own versions again (tests)."""
    cls: Any = aiotoggles.ToggleSet
    cls.make_toggle, cls.drop_toggle = _ORIGINAL
