"""The planner's view of the fleet, built from the objects the operator (or the CLI) has read.

Pure: takes parsed EdgeNodes and Node facts, returns `planning.NodeInput`s with each node's
hardware (reported by its agent, or derived from its labels), this deployment's entries and the
memory claims of deployments that take precedence on the node.

The operator plans every deployment over the whole fleet every few seconds, from the same parsed
objects (Kopf's indexes replace an object only when it changes). So each node's inputs are
memoized on the identity of its EdgeNode and NodeInfo: a replan of D deployments over N nodes
builds each NodeInput once, not D times per pass. The objects are frozen models and are never
changed in place; a new object for a node (an agent's heartbeat) drops that node's memo.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from edge_rollout.api.edgenode import DesiredModel, EdgeNode, Hardware
from edge_rollout.core import labels as node_labels
from edge_rollout.core import planning


class _Named(Protocol):
    @property
    def name(self) -> str: ...


M = TypeVar("M", bound=_Named)


@dataclass(frozen=True)
class NodeInfo:
    """What the operator keeps of a Node object."""

    labels: Mapping[str, str]
    allocatable_memory: int


def deployment_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def node_inputs(
    key: str,
    priority: int,
    selector_empty: bool,
    nodes: Mapping[str, NodeInfo],
    edgenodes: Mapping[str, EdgeNode],
) -> list[planning.NodeInput]:
    """Every node the deployment could run on, with its entries and hardware.

    An empty selector means every node with an agent (an EdgeNode), not every Node.
    """
    names = _sorted_names(edgenodes.keys() if selector_empty else nodes.keys() | edgenodes.keys())
    views = _VIEWS
    result = []
    for name in names:
        info, edgenode = nodes.get(name), edgenodes.get(name)
        view = views.get(name)
        if view is None or view.info is not info or view.edgenode is not edgenode:
            view = views[name] = _NodeView(name, info, edgenode)
        result.append(view.node_input(key, priority))
    if len(views) > 2 * len(names) + 1024:
        _prune(names)
    return result


class _NodeView:
    """One node's parsed facts and memoized NodeInputs, valid while its NodeInfo and EdgeNode
    objects are."""

    __slots__ = (
        "ahead",
        "edgenode",
        "entries",
        "hardware",
        "info",
        "inputs",
        "labels",
        "name",
        "ranks",
        "reports",
    )

    def __init__(self, name: str, info: NodeInfo | None, edgenode: EdgeNode | None) -> None:
        self.name = name
        self.info = info
        self.edgenode = edgenode
        self.labels = info.labels if info else _metadata_labels(edgenode)
        self.hardware = _hardware(info, edgenode, self.labels)
        models = edgenode.spec.models if edgenode else []
        self.entries = _first_by_name(models)
        self.reports = _first_by_name(edgenode.status.models if edgenode else [])
        self.ranks = sorted(_rank(e.priority, e.name) for e in models)
        self.ahead: dict[int, tuple[tuple[DesiredModel, ...], frozenset[str]]] = {}
        self.inputs: dict[tuple[str, int], planning.NodeInput] = {}

    def node_input(self, key: str, priority: int) -> planning.NodeInput:
        found = self.inputs.get((key, priority))
        if found is None:
            found = planning.NodeInput(
                name=self.name,
                labels=self.labels,
                hardware=self.hardware,
                desired=self.entries.get(key),
                reported=self.reports.get(key),
                claims=self._claims(key, priority),
            )
            self.inputs[(key, priority)] = found
        return found

    def _claims(self, key: str, priority: int) -> tuple[DesiredModel, ...]:
        """Entries of other deployments that fit before this one. A node holds few entries, so
        there are few distinct answers (one per place `(priority, key)` takes among them)."""
        rank = _rank(priority, key)
        place = bisect.bisect_left(self.ranks, rank)
        found = self.ahead.get(place)
        if found is None:
            models = self.edgenode.spec.models if self.edgenode else []
            ahead = tuple(e for e in models if _rank(e.priority, e.name) < rank)
            found = self.ahead[place] = (ahead, frozenset(e.name for e in ahead))
        ahead, names = found
        if key in names:
            return tuple(e for e in ahead if e.name != key)
        return ahead


def _rank(priority: int, name: str) -> tuple[int, str]:
    """The order in which deployments fit on a node: higher priority first, then by name."""
    return -priority, name


def _first_by_name(items: Iterable[M]) -> dict[str, M]:
    found: dict[str, M] = {}
    for item in items:
        found.setdefault(item.name, item)
    return found


_VIEWS: dict[str, _NodeView] = {}
"""node name -> its memo. Lookups and stores are single dict operations, safe across the
operator's handler threads (a race builds the same NodeInput twice)."""
_SORTED: list[list[str]] = []
"""The last sorted name lists (all Nodes; Nodes with an agent): fleets rarely change between two
plans, so re-sorting is skipped."""


def _sorted_names(names: Iterable[str]) -> list[str]:
    wanted = set(names)
    for last in _SORTED:
        if len(last) == len(wanted) and wanted.issuperset(last):
            return last
    ordered = sorted(wanted)
    _SORTED[:] = [ordered, *_SORTED[:1]]
    return ordered


def _prune(names: Iterable[str]) -> None:
    """Forget nodes that left the fleet."""
    keep = set(names)
    for name in [n for n in _VIEWS if n not in keep]:
        _VIEWS.pop(name, None)


def _hardware(
    info: NodeInfo | None, edgenode: EdgeNode | None, labels: Mapping[str, str]
) -> Hardware:
    if edgenode is not None and edgenode.status.heartbeat_time:
        return edgenode.status.hardware
    return node_labels.hardware_from_labels(labels, info.allocatable_memory if info else 0)


def _metadata_labels(edgenode: EdgeNode | None) -> dict[str, str]:
    labels = (edgenode.metadata.get("labels") if edgenode else None) or {}
    return {str(k): str(v) for k, v in dict(labels).items()}  # type: ignore[call-overload]
