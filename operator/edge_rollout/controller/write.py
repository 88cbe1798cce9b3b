"""Write a plan: EdgeNode entries that changed, the status if it changed, the events.

No decisions here: everything written comes from `core.planning.Plan`. Entries are applied by a
few writer threads shared by all deployments (`EDGE_ROLLOUT_WRITERS`, default 4): each entry is
its own server-side apply, so their order does not matter, and a few in flight keep the
apiserver busy without flooding it. A refused entry is returned (node -> error), never raised,
so the rest of the plan and its status are still written. A plan that carries a decision
(core.status.carries_decision) has its status written first, then its entries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from edge_rollout.api.common import GROUP, VERSION
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


def write_status(api: Any, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """Patch the ModelDeployment's status now, not when the handler returns: a plan that decides
    something (an abort, a rollback target, a new stable version, a step) is persisted before
    the EdgeNode entries that act on it. A refusal raises, and no entry is written."""
    if status:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "modeldeployments", name, {"status": dict(status)}
        )


def post_events(body: kopf.Body, events: tuple[planning.Event, ...]) -> None:
    """Post each event on `body` and log it (a Warning event as a warning), one line each."""
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        level = logging.WARNING if event.type == "Warning" else logging.INFO
        extra = logrecords.object_extra(body)
        log.log(level, "event %s %s: %s", event.type, event.reason, event.message, extra=extra)
        metrics.EVENTS.labels(event.reason).inc()


CRASH_AFTER = "EDGE_ROLLOUT_TEST_CRASH_AFTER"
"""Fault-injection seam for tests, inert unless set: `abort-decided` makes the operator exit at
once (os._exit, as a SIGKILL would) right after the status write of a plan that decides an abort,
before its EdgeNode entries are written (tests/integration/test_decisions_survive_crash.py)."""


def crash_point(current: ModelDeploymentStatus, nxt: ModelDeploymentStatus) -> None:
    """Exit here when the test seam asks for it and this plan decides an abort."""
    if os.environ.get(CRASH_AFTER) == "abort-decided" and nxt.abort_reason != current.abort_reason:
        log.warning("%s=abort-decided: exiting between the two writes", CRASH_AFTER)
        logging.shutdown()
        os._exit(137)


def record_counts(namespace: str, name: str, status: ModelDeploymentStatus) -> None:
    """Export the deployment's node counts and info series from the status just written."""
    metrics.record_deployment(namespace, name, status)
