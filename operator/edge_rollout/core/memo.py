"""Bounded memos of the planner's last results, one per deployment.

Pure bookkeeping, no decisions. The operator's handler threads plan different deployments at the
same time: each entry is a frozen value, stored and evicted with single dict operations (and
eviction walks a copy of the keys), so a thread sees either the old entry or the new one.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

LIMIT = 512
"""Deployments whose last result is kept; the least recently planned are forgotten first."""


def remember(memo: dict[K, V], key: K, value: V, limit: int = LIMIT) -> None:
    """Store `value` as the most recent entry, then forget the oldest beyond `limit`."""
    memo.pop(key, None)  # re-inserted last: the least recently planned go first
    memo[key] = value
    for stale in list(memo)[: max(0, len(memo) - limit)]:  # list(): atomic under the GIL
        memo.pop(stale, None)
