"""Write a plan: EdgeNode entries that changed, the status if it changed, the events.

No decisions here: everything written comes from `core.planning.Plan`. Entries are applied by a
few writer threads shared by all deployments (`EDGE_ROLLOUT_WRITERS`, default 4): each entry is
its own server-side apply, so their order does not matter, and a few in flight keep the
apiserver busy without flooding it. A refused entry is returned (node -> error), never raised,
so the rest of the plan and its status are still written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from edge_rollout.api.edgenode import EdgeNode
from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.controller import metrics
from edge_rollout.core import planning
from edge_rollout.kube import edgenodes as kube_edgenodes
from edge_rollout.kube import failures as kube_failures
from edge_rollout.kube import logrecords

log = logging.getLogger(__name__)


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


WRITERS = max(1, int(os.environ.get("EDGE_ROLLOUT_WRITERS", "4")))
_WRITERS = ThreadPoolExecutor(WRITERS, thread_name_prefix="edgenode-writer")


def apply_entries(
    api: Any, key: str, changes: Mapping[str, Any], logger: kopf.Logger
) -> dict[str, str]:
    """Apply every changed entry, a few at a time; a refused write does not stop the others.
    Returns node -> what went wrong, for each write that failed (the next plan writes it
    again)."""

    def apply(node: str) -> None:
        kube_edgenodes.apply_entry(api, node, key, changes[node])

    nodes = sorted(changes)
    futures = [_WRITERS.submit(apply, node) for node in nodes]
    failed: dict[str, str] = {}
    for node, future in zip(nodes, futures, strict=True):
        error = future.exception()
        entry = changes[node]
        what = f"{entry.version}/{entry.variant}" if entry else "removed"
        if error is not None:
            failed[node] = kube_failures.describe(error)[1]
            logger.warning(f"edgenode {node}: {key} -> {what} failed: {failed[node]}")
            continue
        logger.info(f"edgenode {node}: {key} -> {what}")
        metrics.EDGENODE_WRITES.inc()
    return failed


def status_patch(current: Mapping[str, Any], nxt: ModelDeploymentStatus) -> dict[str, Any]:
    """The status to write, or {} when nothing changed."""
    new = nxt.model_dump(mode="json", by_alias=True, exclude_none=True)
    old = ModelDeploymentStatus.model_validate(current or {}).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    return new if new != old else {}


def post_events(body: kopf.Body, events: tuple[planning.Event, ...]) -> None:
    """Post each event on `body` and log it (a Warning event as a warning), one line each."""
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        level = logging.WARNING if event.type == "Warning" else logging.INFO
        extra = logrecords.object_extra(body)
        log.log(level, "event %s %s: %s", event.type, event.reason, event.message, extra=extra)
        metrics.EVENTS.labels(event.reason).inc()


def record_counts(namespace: str, name: str, status: ModelDeploymentStatus) -> None:
    """Export the deployment's node counts and info series from the status just written."""
    metrics.record_deployment(namespace, name, status)
