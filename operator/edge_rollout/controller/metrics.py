"""Prometheus metrics of the operator (served by `edge-rollout operator --metrics-port`).

Series per ModelDeployment carry only namespace and name (never node names), are set from the
status the operator writes and are removed when the deployment is deleted.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, Histogram

from edge_rollout.api.modeldeployment import ModelDeploymentStatus

PLANS = Counter("edge_rollout_plans_total", "Plans computed, by outcome.", ["outcome"])
PLAN_SECONDS = Histogram("edge_rollout_plan_seconds", "Time to gather, plan and write once.")
EDGENODE_WRITES = Counter(
    "edge_rollout_edgenode_writes_total", "Server-side applies of EdgeNode entries."
)
EVENTS = Counter("edge_rollout_events_total", "Events posted, by reason.", ["reason"])
NODES = Gauge(
    "edge_rollout_deployment_nodes",
    "Targeted nodes of a ModelDeployment by rollout phase (succeeded, failed, pending: they sum "
    "to edge_rollout_deployment_nodes_targeted).",
    ["namespace", "name", "phase"],
)
TARGETED = Gauge(
    "edge_rollout_deployment_nodes_targeted",
    "Nodes a ModelDeployment selects.",
    ["namespace", "name"],
)
APPLIED = Gauge(
    "edge_rollout_deployment_nodes_applied",
    "Nodes asked to run the target version of a ModelDeployment.",
    ["namespace", "name"],
)
INFO = Gauge(
    "edge_rollout_modeldeployment_info",
    "1 for each ModelDeployment, with its phase, target version and current step.",
    ["namespace", "name", "phase", "version", "step"],
)
NODE_PHASES = ("succeeded", "failed", "pending")

_LOCK = threading.Lock()
_INFO_LABELS: dict[tuple[str, str], tuple[str, str, str]] = {}
"""The info labelset each deployment exports now, to remove it when phase, version or step
changes (a gauge keeps every labelset it was ever given)."""


def record_deployment(namespace: str, name: str, status: ModelDeploymentStatus) -> None:
    """Set the node counts and the info series of a deployment from the status just written."""
    counts = status.counts
    for phase, value in zip(
        NODE_PHASES, (counts.succeeded, counts.failed, counts.pending), strict=True
    ):
        NODES.labels(namespace, name, phase).set(value)
    TARGETED.labels(namespace, name).set(counts.targeted)
    APPLIED.labels(namespace, name).set(counts.applied)
    labels = (status.phase or "Pending", status.target_version, str(status.current_step_index))
    with _LOCK:
        old = _INFO_LABELS.get((namespace, name))
        if old is not None and old != labels:
            INFO.remove(namespace, name, *old)
        _INFO_LABELS[(namespace, name)] = labels
        INFO.labels(namespace, name, *labels).set(1)


def forget_deployment(namespace: str, name: str) -> None:
    """Remove every series of a deleted deployment (the counters by reason/outcome stay)."""
    for phase in NODE_PHASES:
        _remove(NODES, namespace, name, phase)
    _remove(TARGETED, namespace, name)
    _remove(APPLIED, namespace, name)
    with _LOCK:
        old = _INFO_LABELS.pop((namespace, name), None)
    if old is not None:
        _remove(INFO, namespace, name, *old)


def _remove(gauge: Gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:  # never set (deleted before its first plan)
        return
