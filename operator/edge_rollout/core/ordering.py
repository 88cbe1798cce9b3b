"""Which nodes a plan acts on, in the order it asks them: the selected nodes, canary-labelled ones
first, then by name; and the unselected nodes whose entry must go.

Pure. Selector matches are remembered in the deployment's `memo.NodeMemo`, and the caller hands
back the last order (`Ordered`, kept in its `caching.PlannerCache`): when the gatherer hands the
same nodes again, or new objects for nodes whose name, matches and entry did not change, the
order is reused rather than worked out and sorted again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from operator import attrgetter, is_not, not_

from edge_rollout.api.common import LabelSelector
from edge_rollout.api.modeldeployment import ModelDeploymentSpec
from edge_rollout.core import labels as node_labels
from edge_rollout.core import memo
from edge_rollout.core.values import NodeInput
from edge_rollout.core.values import Selection as Selection

_NAME = attrgetter("name")


def select_nodes(
    spec: ModelDeploymentSpec,
    nodes: Sequence[NodeInput],
    last: Ordered | None = None,
    facts: memo.NodeMemo | None = None,
) -> Ordered:
    """The selected nodes in order, and the entries to remove (`.selection`), given the order
    `last` returned for the same deployment (None: worked out from scratch; same result).

    Worked example: nodes b, a, c (c labelled canary), all selected: c, a, b.
    """
    matchers = _Matchers(spec, facts if facts is not None else memo.NodeMemo())
    given = tuple(nodes)
    if last is None or last.key != matchers.key or len(last.given) != len(given):
        return _order(matchers, given)
    return last.update(matchers, given)


class _Matcher:
    """`selector_matches(selector, node.labels)`, worked out once per node and selector."""

    def __init__(self, selector: LabelSelector, facts: memo.NodeMemo) -> None:
        self.selector = selector
        self.nodes = facts
        self.key = ("selects", node_labels.selector_key(selector))

    def __call__(self, node: NodeInput) -> bool:
        facts = self.nodes.facts(node)
        found = facts.get(self.key)
        if found is None:
            found = node_labels.selector_matches(self.selector, node.labels)
            memo.remember_fact(facts, self.key, found)
        return found is True


class _Matchers:
    """The deployment's node selector and canary selector."""

    def __init__(self, spec: ModelDeploymentSpec, facts: memo.NodeMemo) -> None:
        self.selects = _Matcher(spec.node_selector, facts)
        canary = spec.strategy.canary_selector
        self.canary = _Matcher(canary, facts) if canary is not None else None
        self.key = (self.selects.key[1], self.canary.key[1] if self.canary else None)

    def facts(self, node: NodeInput) -> tuple[str, bool, bool]:
        """What the node's place in the order depends on: its name, whether it is selected,
        and then whether it is a canary, else whether it holds an entry."""
        if self.selects(node):
            return node.name, True, self.canary is not None and self.canary(node)
        return node.name, False, bool(node.desired)


@dataclass(frozen=True)
class Ordered:
    """One deployment's order of its nodes, and what is needed to reuse it at the next plan."""

    key: tuple[str, str | None]
    given: tuple[NodeInput, ...]
    positions: tuple[int, ...]
    """Of the selected nodes in `given`, in order."""
    selection: Selection

    def update(self, matchers: _Matchers, given: tuple[NodeInput, ...]) -> Ordered:
        """The same order over `given` when every node that is another object has the same
        facts as the one it replaces; else worked out again."""
        changed = list(compress(range(len(given)), map(is_not, given, self.given)))
        if not changed:
            return self
        old = self.given
        if any(matchers.facts(given[i]) != matchers.facts(old[i]) for i in changed):
            return _order(matchers, given)
        nodes = tuple(map(given.__getitem__, self.positions))
        selection = Selection(nodes, self.selection.removed, self.selection.unique)
        return Ordered(self.key, given, self.positions, selection)


def _order(matchers: _Matchers, given: tuple[NodeInput, ...]) -> Ordered:
    selects = matchers.selects
    chosen = [i for i, node in enumerate(given) if selects(node)]
    names = list(map(_NAME, given))
    if matchers.canary is None:
        positions = sorted(chosen, key=names.__getitem__)
    else:
        canaries = [matchers.canary(given[i]) for i in chosen]
        first = compress(chosen, canaries)
        rest = compress(chosen, map(not_, canaries))
        positions = sorted(first, key=names.__getitem__) + sorted(rest, key=names.__getitem__)
    nodes = tuple(map(given.__getitem__, positions))
    taken = set(map(_NAME, nodes))
    removed = tuple(n.name for n in given if n.desired and n.name not in taken)
    selection = Selection(nodes, removed, len(taken) == len(nodes))
    return Ordered(matchers.key, given, tuple(positions), selection)
