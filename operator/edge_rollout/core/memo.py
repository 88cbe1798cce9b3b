"""Bounded memos for the planner's cache: least-recently-used dicts, and facts per NodeInput.

Pure bookkeeping, no decisions; the memos themselves belong to `caching.PlannerCache`. The
operator's handler threads plan different deployments at the same time: entries are stored and
evicted with single dict operations (eviction walks a copy of the keys), so a thread sees either
the old entry or the new one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from edge_rollout.core.values import NodeInput

K = TypeVar("K")
V = TypeVar("V")

LIMIT = 512
"""Deployments whose last result is kept; the least recently planned are forgotten first."""
FACTS_LIMIT = 64
"""Facts kept per NodeInput (a few per spec and release the node has seen)."""

Facts = dict[tuple[object, ...], object]


def remember(memo: dict[K, V], key: K, value: V, limit: int = LIMIT) -> list[K]:
    """Store `value` as the most recent entry, then forget the oldest beyond `limit`; returns
    the keys forgotten."""
    memo.pop(key, None)  # re-inserted last: the least recently planned go first
    memo[key] = value
    stale = list(memo)[: max(0, len(memo) - limit)]  # list(): atomic under the GIL
    for old in stale:
        memo.pop(old, None)
    return stale


def remember_fact(facts: Facts, key: tuple[object, ...], value: object) -> None:
    """Keep `value` in `facts`, which forgets everything past FACTS_LIMIT facts."""
    facts[key] = value
    if len(facts) > FACTS_LIMIT:
        facts.clear()


class NodeMemo:
    """What the planner worked out about each node of one deployment (selector matches, variant
    choices, refreshed entries, lasting outcomes), keyed by everything it depends on besides the
    node. Valid while the gatherer hands the same NodeInput object for the node: a new object
    (even an equal one) starts with no facts.

    >>> from edge_rollout.api.edgenode import Hardware
    >>> memo, node = NodeMemo(), NodeInput("n1", {}, Hardware())
    >>> memo.facts(node)[("k",)] = 1
    >>> memo.facts(node), memo.facts(NodeInput("n1", {}, Hardware()))
    ({('k',): 1}, {})
    """

    __slots__ = ("_by_name", "_last")

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[NodeInput, Facts]] = {}
        self._last: tuple[NodeInput, Facts] | None = None
        """The entry asked for last (a plan asks about one node several times in a row)."""

    def facts(self, node: NodeInput) -> Facts:
        """The facts about `node` (this very object), to read and to add to."""
        last = self._last
        if last is not None and last[0] is node:
            return last[1]
        found = self._by_name.get(node.name)
        if found is None or found[0] is not node:
            found = self._by_name[node.name] = (node, {})
        self._last = found
        return found[1]

    def __len__(self) -> int:
        return len(self._by_name)

    def keep(self, names: Iterable[str]) -> None:
        """Forget the nodes not named (those that left the fleet or the selection)."""
        kept = set(names)
        for name in [n for n in list(self._by_name) if n not in kept]:
            self._by_name.pop(name, None)
        self._last = None
