"""The planner's view of the fleet, built from the objects the operator (or the CLI) has read.

Pure: takes parsed EdgeNodes and Node facts, returns `planning.NodeInput`s with each node's
hardware (reported by its agent, or derived from its labels), this deployment's entries and the
memory claims of deployments that take precedence on the node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edge_rollout.api.edgenode import DesiredModel, EdgeNode, Hardware
from edge_rollout.core import labels as node_labels
from edge_rollout.core import planning


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
    names = set(edgenodes) if selector_empty else set(nodes) | set(edgenodes)
    return [
        _node_input(key, priority, name, nodes.get(name), edgenodes.get(name))
        for name in sorted(names)
    ]


def _node_input(
    key: str, priority: int, name: str, info: NodeInfo | None, edgenode: EdgeNode | None
) -> planning.NodeInput:
    labels = info.labels if info else _metadata_labels(edgenode)
    entries = edgenode.spec.models if edgenode else []
    reports = edgenode.status.models if edgenode else []
    return planning.NodeInput(
        name=name,
        labels=labels,
        hardware=_hardware(info, edgenode, labels),
        desired=next((e for e in entries if e.name == key), None),
        reported=next((r for r in reports if r.name == key), None),
        claims=tuple(_claims(key, priority, entries)),
    )


def _hardware(
    info: NodeInfo | None, edgenode: EdgeNode | None, labels: Mapping[str, str]
) -> Hardware:
    if edgenode is not None and edgenode.status.heartbeat_time:
        return edgenode.status.hardware
    return node_labels.hardware_from_labels(labels, info.allocatable_memory if info else 0)


def _claims(key: str, priority: int, entries: Iterable[DesiredModel]) -> list[DesiredModel]:
    """Entries of other deployments that fit before this one (higher priority, then name)."""
    return [e for e in entries if e.name != key and (-e.priority, e.name) < (-priority, key)]


def _metadata_labels(edgenode: EdgeNode | None) -> dict[str, str]:
    labels = (edgenode.metadata.get("labels") if edgenode else None) or {}
    return {str(k): str(v) for k, v in dict(labels).items()}  # type: ignore[call-overload]
