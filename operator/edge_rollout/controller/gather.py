"""Gather everything one plan needs into frozen values: the deployment, its releases, the nodes.

Reads only what Kopf's indexes already hold and the release cache; writes nothing and decides
nothing (the decisions are in `edge_rollout.core`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_rollout.api.edgenode import DesiredModel, EdgeNode, Hardware
from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.api.release import Release
from edge_rollout.controller.releases import ReleaseCache, ReleaseRef, ReleaseUnavailableError
from edge_rollout.core import labels as node_labels
from edge_rollout.core import planning
from edge_rollout.kube import nodes as kube_nodes


@dataclass(frozen=True)
class NodeInfo:
    """What the operator keeps of a Node object."""

    labels: Mapping[str, str]
    allocatable_memory: int


def node_info(labels: Mapping[str, str], status: Mapping[str, Any]) -> NodeInfo:
    return NodeInfo(dict(labels), kube_nodes.allocatable_memory(status))


def deployment_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def releases_for(md: ModelDeployment, cache: ReleaseCache) -> dict[str, Release]:
    """The target release (or ReleaseUnavailableError) and the stable one if it still loads."""
    store = md.spec.model.store
    target = md.spec.model.version
    releases = {
        target: cache.get(ReleaseRef(store.url, store.public_key, md.spec.model.name, target))
    }
    stable = md.status.stable_version
    if stable and stable != target:
        ref = ReleaseRef(store.url, store.public_key, md.spec.model.name, stable)
        # Without it, nodes on the stable version simply keep the entries they have.
        with contextlib.suppress(ReleaseUnavailableError):
            releases[stable] = cache.get(ref)
    return releases


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
