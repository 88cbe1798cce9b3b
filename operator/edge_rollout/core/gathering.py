"""Gathering the planner's view of the fleet, reusing what the last gathering built.

Pure: from parsed EdgeNodes and Node facts, `NodeInput`s with each node's hardware (reported by
its agent, or derived from its labels), a deployment's entries and the memory claims of the
deployments that take precedence on the node. `inputs.node_inputs` is the entry point.

The operator plans every deployment over the whole fleet every few seconds, from the same parsed
objects (Kopf's indexes replace an object only when it changes). So each node's inputs are
memoized (`NodeViews`, in the caller's `caching.PlannerCache`) on the identity of its EdgeNode
and NodeInfo: a replan of D deployments over N nodes builds each NodeInput once, not D times
per pass. The objects are frozen and never changed in place; a new object for a node (an agent's
heartbeat) drops that node's memo.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import compress, repeat
from operator import and_, is_not, lt, ne
from typing import Protocol, TypeVar

from edge_rollout.api.common import LabelSelector
from edge_rollout.api.edgenode import DesiredModel, EdgeNode, Hardware, ModelStatus
from edge_rollout.core import labels as node_labels
from edge_rollout.core import reports
from edge_rollout.core.values import NodeInfo, NodeInput


class _Named(Protocol):
    @property
    def name(self) -> str: ...


M = TypeVar("M", bound=_Named)


Wanted = tuple[str, int, bool, LabelSelector | None, str]
"""(key, priority, selector_empty, selector, its selector_key) of one gathering."""


def gather(
    wanted: Wanted,
    nodes: Mapping[str, NodeInfo],
    edgenodes: Mapping[str, EdgeNode],
    views: NodeViews,
    last: Gathered | None = None,
) -> Gathered:
    """The NodeInputs of one deployment (`.result`), given the gathering this returned at its
    last plan (None: every node visited; same result) and the fleet's `views`."""
    fleet = _Fleet(tuple(nodes), tuple(nodes.values()), tuple(edgenodes), tuple(edgenodes.values()))
    if last is None or _same(last.wanted) != _same(wanted) or not last.fleet.same_names(fleet):
        return _gather(wanted, fleet, nodes, edgenodes, views)
    return last.update(wanted, fleet, nodes, edgenodes, views)


def _same(wanted: Wanted) -> tuple[str, int, bool, str]:
    """What a gathering depends on besides the fleet (the selector by its key)."""
    key, priority, selector_empty, _, selector_key = wanted
    return key, priority, selector_empty, selector_key


@dataclass(frozen=True)
class _Fleet:
    """The objects one gathering saw, in the caller's order (strong references: an object seen
    here is alive, so identity comparisons are sound)."""

    node_names: tuple[str, ...]
    node_infos: tuple[NodeInfo, ...]
    edgenode_names: tuple[str, ...]
    edgenode_objects: tuple[EdgeNode, ...]

    def same_names(self, other: _Fleet) -> bool:
        return self.node_names == other.node_names and self.edgenode_names == other.edgenode_names

    def changed(self, other: _Fleet) -> set[str]:
        """Names whose object is another one in `other` (same names, same order)."""
        moved_nodes = compress(self.node_names, map(is_not, self.node_infos, other.node_infos))
        moved = compress(
            self.edgenode_names, map(is_not, self.edgenode_objects, other.edgenode_objects)
        )
        return {*moved_nodes, *moved}


@dataclass(frozen=True)
class Gathered:
    """One gathering: what was asked, the fleet it saw, the nodes it returned (in order) by
    name."""

    wanted: Wanted
    fleet: _Fleet
    names: list[str]
    chosen: dict[str, NodeInput]
    result: list[NodeInput]

    def update(
        self,
        wanted: Wanted,
        fleet: _Fleet,
        nodes: Mapping[str, NodeInfo],
        edgenodes: Mapping[str, EdgeNode],
        views: NodeViews,
    ) -> Gathered:
        """The same gathering over `fleet`, revisiting only the nodes whose objects changed."""
        changed = self.fleet.changed(fleet)
        if not changed:
            return Gathered(wanted, fleet, self.names, self.chosen, self.result)
        chosen = dict(self.chosen)
        for name in changed:
            found = views.visit(wanted, name, nodes.get(name), edgenodes.get(name))
            if found is None:
                chosen.pop(name, None)
            else:
                chosen[name] = found
        result = [chosen[n] for n in self.names if n in chosen]
        return Gathered(wanted, fleet, self.names, chosen, result)


def _gather(
    wanted: Wanted,
    fleet: _Fleet,
    nodes: Mapping[str, NodeInfo],
    edgenodes: Mapping[str, EdgeNode],
    views: NodeViews,
) -> Gathered:
    selector_empty = wanted[2]
    names = sorted(set(fleet.edgenode_names if selector_empty else nodes.keys() | edgenodes.keys()))
    chosen = {}
    for name in names:
        found = views.visit(wanted, name, nodes.get(name), edgenodes.get(name))
        if found is not None:
            chosen[name] = found
    if len(views) > 2 * len(names) + 1024:
        views.keep(names)
    return Gathered(wanted, fleet, names, chosen, list(chosen.values()))


class NodeViews:
    """Every node's parsed facts and the NodeInputs built from them, shared by all deployments:
    node name -> its `_NodeView`. Lookups and stores are single dict operations, safe across the
    operator's handler threads (a race builds the same NodeInput twice)."""

    __slots__ = ("_views",)

    def __init__(self) -> None:
        self._views: dict[str, _NodeView] = {}

    def __len__(self) -> int:
        return len(self._views)

    def keep(self, names: Iterable[str]) -> None:
        """Forget nodes that left the fleet."""
        kept = set(names)
        for name in [n for n in list(self._views) if n not in kept]:  # list(): atomic (GIL)
            self._views.pop(name, None)

    def forget(self, key: str) -> None:
        """Drop every NodeInput built for the deployment `key` (deleted)."""
        for view in list(self._views.values()):
            view.forget(key)

    def holding(self, key: str) -> int:
        """Nodes holding a NodeInput built for the deployment `key`."""
        return sum(view.holds(key) for view in list(self._views.values()))

    def visit(
        self, wanted: Wanted, name: str, info: NodeInfo | None, edgenode: EdgeNode | None
    ) -> NodeInput | None:
        """The node's NodeInput, or None when the deployment has nothing to do with it."""
        key, priority, selector_empty, selector, selector_key = wanted
        if info is None and edgenode is None:
            return None
        if selector_empty and edgenode is None:
            return None
        view = self._views.get(name)
        if view is None or view.info is not info or view.edgenode is not edgenode:
            view = self._views[name] = _NodeView(name, info, edgenode, view)
        if (
            selector is not None
            and key not in view.entries
            and not view.matches(selector, selector_key)
        ):
            return None
        return view.node_input(key, priority)


class _NodeView:
    """One node's parsed facts and memoized NodeInputs, valid while its NodeInfo and EdgeNode
    objects are.

    A new object for a node often says the same (an agent's heartbeat, another deployment's
    entry written): a NodeInput equal to the one the replaced view gave is handed out again as
    that same object, so the planner's memos about it still apply."""

    __slots__ = (
        "edgenode",
        "entries",
        "hardware",
        "info",
        "inputs",
        "keys",
        "labels",
        "name",
        "places",
        "previous",
        "problem",
        "ranks",
        "reports",
        "selectors",
    )

    def __init__(
        self,
        name: str,
        info: NodeInfo | None,
        edgenode: EdgeNode | None,
        replaced: _NodeView | None = None,
    ) -> None:
        self.name = name
        self.info = info
        self.edgenode = edgenode
        self.labels = info.labels if info else _metadata_labels(edgenode)
        self.hardware = _hardware(info, edgenode, self.labels)
        self.problem = reports.report_problem(edgenode) or ""
        """Why the agent's report is unusable ("" when it is usable)."""
        models = edgenode.spec.models if edgenode else []
        self.entries = _first_by_name(models)
        self.reports = _first_by_name(edgenode.status.models if edgenode else [])
        self.ranks = sorted(_rank(e.priority, e.name) for e in models)
        self.places = [bisect.bisect_left(self.ranks, _rank(e.priority, e.name)) for e in models]
        """Per entry (in spec order), how many entries rank before it."""
        self.keys = [e.name for e in models]
        """Per entry (in spec order), its deployment's key."""
        self.selectors: dict[str, bool] = {}
        self.inputs: dict[tuple[str, int], NodeInput] = {}
        self.previous: dict[tuple[str, int], NodeInput] = {}
        """The replaced view's NodeInputs, to hand out again where equal."""
        if replaced is not None and replaced.labels == self.labels:
            self._take_over(replaced)

    def _take_over(self, replaced: _NodeView) -> None:
        """Keep what the replaced view (with the same labels) worked out and still holds."""
        self.selectors = replaced.selectors
        if (
            self.hardware == replaced.hardware
            and self.problem == replaced.problem
            and _models(self.edgenode) == _models(replaced.edgenode)
        ):
            self.entries, self.reports = replaced.entries, replaced.reports
            self.inputs = replaced.inputs
        else:
            self.previous = dict(replaced.inputs)

    def forget(self, key: str) -> None:
        """Drop the NodeInputs built for the deployment `key`."""
        for built in (self.inputs, self.previous):
            for stale in [k for k in list(built) if k[0] == key]:
                built.pop(stale, None)

    def holds(self, key: str) -> bool:
        return any(k[0] == key for k in (*self.inputs, *self.previous))

    def node_input(self, key: str, priority: int) -> NodeInput:
        found = self.inputs.get((key, priority))
        if found is None:
            found = NodeInput(
                name=self.name,
                labels=self.labels,
                hardware=self.hardware,
                desired=self.entries.get(key),
                reported=self.reports.get(key),
                claims=self._claims(key, priority),
                report_problem=self.problem,
                same_model=self._same_model(key),
            )
            before = self.previous.pop((key, priority), None)
            if before is not None and before == found:
                found = before
            self.inputs[(key, priority)] = found
        return found

    def _same_model(self, key: str) -> tuple[str, ...]:
        """Other deployments with an entry of the same model as `key`'s entry on this node."""
        own = self.entries.get(key)
        if own is None or len(self.entries) < 2:
            return ()
        return tuple(k for k, e in self.entries.items() if k != key and e.model == own.model)

    def matches(self, selector: LabelSelector, key: str) -> bool:
        """The selector (whose `selector_key` is `key`) matches the node's labels."""
        found = self.selectors.get(key)
        if found is None:
            found = self.selectors[key] = node_labels.selector_matches(selector, self.labels)
        return found

    def _claims(self, key: str, priority: int) -> tuple[DesiredModel, ...]:
        """Entries of other deployments that fit before this one, in spec order: an entry
        ranks before (priority, key) when fewer entries rank before it than before (priority,
        key)."""
        place = bisect.bisect_left(self.ranks, _rank(priority, key))
        models = self.edgenode.spec.models if self.edgenode else []
        ahead = map(lt, self.places, repeat(place))
        if key in self.entries:
            ahead = map(and_, ahead, map(ne, self.keys, repeat(key)))
        return tuple(compress(models, ahead))


def _rank(priority: int, name: str) -> tuple[int, str]:
    """The order in which deployments fit on a node: higher priority first, then by name."""
    return -priority, name


def _first_by_name(items: Iterable[M]) -> dict[str, M]:
    found: dict[str, M] = {}
    for item in items:
        found.setdefault(item.name, item)
    return found


def _models(edgenode: EdgeNode | None) -> tuple[list[DesiredModel], list[ModelStatus]]:
    """The node's entries and reports (what its NodeInputs are made of, with labels and
    hardware)."""
    if edgenode is None:
        return [], []
    return edgenode.spec.models, edgenode.status.models


def _hardware(
    info: NodeInfo | None, edgenode: EdgeNode | None, labels: Mapping[str, str]
) -> Hardware:
    if edgenode is not None and edgenode.status.heartbeat_time:
        return edgenode.status.hardware
    return node_labels.hardware_from_labels(labels, info.allocatable_memory if info else 0)


def _metadata_labels(edgenode: EdgeNode | None) -> dict[str, str]:
    labels = (edgenode.metadata.get("labels") if edgenode else None) or {}
    return {str(k): str(v) for k, v in dict(labels).items()}  # type: ignore[call-overload]
