"""Write a plan: EdgeNode entries that changed, the status if it changed, the events.

No decisions here: everything written comes from `core.planning.Plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from edge_rollout.api.edgenode import EdgeNode
from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.controller import metrics
from edge_rollout.core import planning
from edge_rollout.kube import edgenodes as kube_edgenodes


def changed_entries(
    key: str, plan: planning.Plan, current: Mapping[str, EdgeNode]
) -> dict[str, Any]:
    """Nodes whose entry for `key` differs from the plan (None = remove)."""
    changed = {}
    for node, entry in plan.desired.items():
        edgenode = current.get(node)
        have = next((e for e in edgenode.spec.models if e.name == key), None) if edgenode else None
        if have != entry and not (entry is None and edgenode is None):
            changed[node] = entry
    return changed


def apply_entries(api: Any, key: str, changes: Mapping[str, Any], logger: kopf.Logger) -> None:
    for node, entry in sorted(changes.items()):
        kube_edgenodes.apply_entry(api, node, key, entry)
        what = f"{entry.version}/{entry.variant}" if entry else "removed"
        logger.info(f"edgenode {node}: {key} -> {what}")
    metrics.EDGENODE_WRITES.inc(len(changes))


def status_patch(current: Mapping[str, Any], nxt: ModelDeploymentStatus) -> dict[str, Any]:
    """The status to write, or {} when nothing changed."""
    new = nxt.model_dump(mode="json", by_alias=True, exclude_none=True)
    old = ModelDeploymentStatus.model_validate(current or {}).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return new if new != old else {}


def post_events(body: kopf.Body, events: tuple[planning.Event, ...]) -> None:
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        metrics.EVENTS.labels(event.reason).inc()


def record_counts(namespace: str, name: str, status: ModelDeploymentStatus) -> None:
    counts = status.counts
    for outcome, value in (
        ("succeeded", counts.succeeded),
        ("failed", counts.failed),
        ("pending", counts.pending),
        ("targeted", counts.targeted),
    ):
        metrics.NODES.labels(namespace, name, outcome).set(value)
