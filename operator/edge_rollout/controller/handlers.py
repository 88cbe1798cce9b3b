"""Kopf handler registration: each handler gathers, calls `core`, and writes; no business logic.

Import this module (or `kopf run -m edge_rollout.controller.handlers`) to register everything.
ModelDeployments are planned on every spec change and again every few seconds (level-triggered):
agents' progress arrives through the EdgeNode index, and the timer picks it up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import kopf
from pydantic import ValidationError

from edge_rollout.api.common import GROUP, VERSION
from edge_rollout.api.edgenode import EdgeNode
from edge_rollout.api.modeldeployment import ModelDeployment, ModelDeploymentStatus
from edge_rollout.controller import indexing, metrics, prometheus, write
from edge_rollout.controller import settings as operator_settings
from edge_rollout.core import caching, clocks, inputs, planning, reports
from edge_rollout.core import status as status_core
from edge_rollout.kube import client as kube_client
from edge_rollout.kube import failures as kube_failures
from edge_rollout.kube import nodes as kube_nodes
from edge_rollout.store.releases import ReleaseCache, ReleaseUnavailableError, releases_for

REPLAN_SECONDS = float(os.environ.get("EDGE_ROLLOUT_REPLAN_SECONDS", "5"))
AGENT_HEARTBEAT = reports.AGENT_HEARTBEAT_ENV
"""The agents' heartbeat (the chart sets it from agent.heartbeatSeconds): read at every plan."""
indexing.apply()  # Kopf's index readiness in O(N) wake-ups, not O(N^2) (controller/indexing.py)
RELEASES = ReleaseCache()
PLANNER = caching.PlannerCache()
"""What the planner remembers between plans: one per operator process (core/caching.py)."""
V = TypeVar("V")


@functools.cache
def _objects_api() -> Any:
    return kube_client.custom_objects(kube_client.api_client())


@kopf.on.startup(id="configure")
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    operator_settings.configure(settings)
    for memory in (_SIGHTINGS, HEARD, _SKEWED):  # a new run knows nothing yet (tests restart
        memory.clear()  # the operator in one process)


@kopf.on.login(id="login")
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: $KUBECONFIG (read now, not at import time)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return kopf.login_with_service_account(**kwargs)
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.index("nodes", id="nodes")
def nodes_index(
    name: str, labels: kopf.Labels, status: kopf.Status, **_: Any
) -> dict[str, inputs.NodeInfo]:
    return {name: kube_nodes.node_info(labels, status)}


@kopf.index(GROUP, VERSION, "edgenodes", id="edgenodes")
def edgenodes_index(name: str, body: kopf.Body, **_: Any) -> dict[str, EdgeNode]:
    """Agents' reports are untrusted: an unusable status is kept as ReportInvalid (core/reports);
    a usable one is moved onto the operator's clock (core/clocks), a skewed clock warned about."""
    now = dt.datetime.now(dt.UTC)
    edgenode = reports.read_edgenode(body, now)
    seen, arrived = _SIGHTINGS.see(name, edgenode.status.heartbeat_time, now)
    if edgenode.status.heartbeat_time:
        HEARD[name] = seen
    else:
        HEARD.pop(name, None)
    if arrived:  # only a heartbeat seen arriving tells how far off the node's clock is
        _warn_skew(body, name, clocks.skew_warning(name, clocks.skew(edgenode, seen)))
    return {name: clocks.on_operator_clock(edgenode, seen)}


_SIGHTINGS = clocks.Sightings()
"""Each node's current heartbeat and when this operator first saw it (core/clocks)."""
HEARD: dict[str, dt.datetime] = {}
"""node -> when this operator last heard from its agent (first saw its latest heartbeat): a node
silent for 4 heartbeats is NoAgent (core/reports.hold_silent)."""
_SKEWED: dict[str, str] = {}
"""node -> the ClockSkew warning last posted for it (one Event per change, not per heartbeat)."""


def _warn_skew(body: kopf.Body, node: str, warning: str | None) -> None:
    """A Warning Event `ClockSkew` on the EdgeNode when its clock goes off by more than
    clocks.SKEW_WARNING (again when the amount changes by a minute or more), a log line when it
    is back."""
    previous = _SKEWED.pop(node, None)
    if warning is None:
        if previous is not None:
            logging.getLogger(__name__).info("edgenode %s: clock back in step", node)
        return
    _SKEWED[node] = warning
    if previous is None or previous.split(";")[0] != warning.split(";")[0]:
        write.post_events(body, (planning.Event("Warning", "ClockSkew", warning),))


@kopf.on.resume(GROUP, VERSION, "modeldeployments", id="modeldeployment_changed")
@kopf.on.create(GROUP, VERSION, "modeldeployments", id="modeldeployment_changed")
@kopf.on.update(GROUP, VERSION, "modeldeployments", id="modeldeployment_changed", field="spec")
def modeldeployment_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
    """Plan right away when the spec changes."""
    with _planning(namespace or "", name), _reported(kwargs, retried=False):
        reconcile(namespace=namespace or "", name=name, **kwargs)


@kopf.timer(
    GROUP,
    VERSION,
    "modeldeployments",
    id="modeldeployment_replan",
    interval=REPLAN_SECONDS,
    initial_delay=REPLAN_SECONDS,  # the create/resume handler plans first; not both at once
    sharp=False,
)
def modeldeployment_replan(namespace: str | None, name: str, **kwargs: Any) -> None:
    """Plan again: nodes report progress, pauses expire, deadlines pass. Skipped while another
    plan of the deployment is being written (the next tick plans from what it wrote)."""
    lock = _planning(namespace or "", name)
    if not lock.acquire(blocking=False):
        return
    try:
        with _reported(kwargs, retried=False):
            reconcile(namespace=namespace or "", name=name, **kwargs)
    finally:
        lock.release()


@kopf.on.delete(GROUP, VERSION, "modeldeployments", id="modeldeployment_deleted")
def modeldeployment_deleted(
    namespace: str | None, name: str, logger: kopf.Logger, **kwargs: Any
) -> None:
    """Remove this deployment's entries from every EdgeNode (the agents then drop the model)."""
    key = inputs.deployment_key(namespace or "", name)
    with _planning(namespace or "", name), _reported({**kwargs, "logger": logger}, retried=True):
        current: dict[str, EdgeNode] = _single(kwargs["edgenodes"])
        holders = [n for n, e in current.items() if any(m.name == key for m in e.spec.models)]
        failed = write.apply_entries(_objects_api(), key, dict.fromkeys(holders), logger)
        if failed:
            _write_failures(kwargs["body"], kwargs["patch"], failed)
            raise kopf.TemporaryError(
                f"{len(failed)} EdgeNode entries not removed yet", delay=REMOVAL_RETRY_SECONDS
            )
        metrics.forget_deployment(namespace or "", name)
        PLANNER.forget(key)


def reconcile(
    body: kopf.Body,
    meta: kopf.Meta,
    namespace: str,
    name: str,
    patch: kopf.Patch,
    logger: kopf.Logger,
    nodes: kopf.Index[str, inputs.NodeInfo],
    edgenodes: kopf.Index[str, EdgeNode],
    **_: Any,
) -> None:
    """Gather -> plan -> write for one ModelDeployment."""
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    generation = int(meta.get("generation", 0))
    current_status = ModelDeploymentStatus.model_validate(body.get("status") or {})
    try:
        md = ModelDeployment.model_validate(dict(body))
        releases = releases_for(md, RELEASES)
    except (ValidationError, ReleaseUnavailableError) as error:
        _stall(body, patch, logger, current_status, generation, error, now)
        return
    key = inputs.deployment_key(namespace, name)
    current_edgenodes = _single(edgenodes)
    fleet = inputs.node_inputs(
        key,
        md.spec.priority,
        _selector_empty(md),
        _single(nodes),
        current_edgenodes,
        md.spec.node_selector,
        PLANNER,
    )
    deployment = planning.Deployment(key, generation, md.spec, current_status)
    readings = prometheus.measure(md.spec, current_status, now)
    heard = reports.Heard(HEARD, _agent_heartbeat())
    plan = planning.plan_rollout(deployment, releases, fleet, now, readings, PLANNER, heard)
    if status_core.carries_decision(current_status, plan.status):
        # Persist the decision before acting on it: a crash between the two writes leaves a
        # status the next plan re-derives the same entries from (issue 14.8).
        decided = write.status_patch(body.get("status") or {}, plan.status)
        write.write_status(_objects_api(), namespace, name, decided)
        write.crash_point(current_status, plan.status)
    failed = write.apply_entries(
        _objects_api(), key, write.changed_entries(key, plan, current_edgenodes), logger
    )
    status, write_events = status_core.with_write_failures(
        plan.status, failed, generation=generation, now=now
    )
    patch.status.update(write.status_patch(body.get("status") or {}, status))
    write.post_events(body, (*plan.events, *write_events))
    write.record_counts(namespace, name, status)
    metrics.PLANS.labels("planned").inc()
    metrics.PLAN_SECONDS.observe(time.monotonic() - started)


def _agent_heartbeat() -> dt.timedelta:
    """$EDGE_ROLLOUT_AGENT_HEARTBEAT_SECONDS (reports.heartbeat_setting)."""
    return reports.heartbeat_setting(os.environ.get(AGENT_HEARTBEAT))


_PLANNING: dict[str, threading.Lock] = {}


def _planning(namespace: str, name: str) -> threading.Lock:
    """One plan (or removal) of a deployment at a time: Kopf runs the change handler and the
    timer concurrently, and both would write the same entries (twice the API writes)."""
    return _PLANNING.setdefault(inputs.deployment_key(namespace, name), threading.Lock())


def _stall(
    body: kopf.Body,
    patch: kopf.Patch,
    logger: kopf.Logger,
    current: ModelDeploymentStatus,
    generation: int,
    error: Exception,
    now: dt.datetime,
) -> None:
    if isinstance(error, ReleaseUnavailableError):
        reason, message = error.reason, str(error)
    else:
        reason, message = "InvalidSpec", f"{_first_error(error)}; fix it and apply again"
    nxt = status_core.stalled_status(
        current, generation=generation, reason=reason, message=message, now=now
    )
    patch.status.update(write.status_patch(body.get("status") or {}, nxt))
    if current.message != message:
        logger.warning(f"stalled: {reason}: {message}")
        write.post_events(body, (planning.Event("Warning", reason, message),))
    metrics.PLANS.labels("stalled").inc()


REMOVAL_RETRY_SECONDS = 2.0
"""A deployment being deleted tries the EdgeNode entries it could not remove again this soon."""


@contextlib.contextmanager
def _reported(kwargs: Mapping[str, Any], *, retried: bool) -> Iterator[None]:
    """Every failure of a ModelDeployment handler is seen: a log line naming the object and the
    error, a Warning Event and a Stalled condition with the reason and message. Plans are not
    retried by Kopf (the replan timer plans again); a deletion is (`retried`), so that its
    finalizer stays until every entry is removed."""
    try:
        yield
    except kopf.TemporaryError:
        raise  # already reported by the handler
    except Exception as error:
        _failed(kwargs["body"], kwargs["patch"], kwargs["logger"], error)
        if retried:
            raise


def _failed(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, error: Exception) -> None:
    reason, message = kube_failures.describe(error)
    meta = body.get("metadata") or {}
    what = f"modeldeployment {meta.get('namespace')}/{meta.get('name')}"
    logger.error(f"{what}: {reason}: {message}", exc_info=reason == kube_failures.HANDLER_FAILED)
    message = f"{message}; the operator tries again in {REPLAN_SECONDS:g} s"
    try:
        current = ModelDeploymentStatus.model_validate(body.get("status") or {})
    except ValidationError:
        current = ModelDeploymentStatus()
    nxt = status_core.stalled_status(
        current,
        generation=int(meta.get("generation", 0)),
        reason=reason,
        message=message,
        now=dt.datetime.now(dt.UTC),
    )
    patch.status.update(write.status_patch(body.get("status") or {}, nxt))
    if current.message != message:
        write.post_events(body, (planning.Event("Warning", reason, message),))
    metrics.PLANS.labels("failed").inc()


def _write_failures(body: kopf.Body, patch: kopf.Patch, failed: Mapping[str, str]) -> None:
    """The EdgeNodesWritten condition and its Event for entries a deletion could not remove."""
    current = ModelDeploymentStatus.model_validate(body.get("status") or {})
    generation = int((body.get("metadata") or {}).get("generation", 0))
    status, events = status_core.with_write_failures(
        current, failed, generation=generation, now=dt.datetime.now(dt.UTC)
    )
    patch.status.update(write.status_patch(body.get("status") or {}, status))
    write.post_events(body, events)


def _first_error(error: Exception) -> str:
    if not isinstance(error, ValidationError):
        return str(error)
    first = error.errors()[0]
    return ".".join(str(p) for p in first["loc"]) + ": " + first["msg"]


def _selector_empty(md: ModelDeployment) -> bool:
    selector = md.spec.node_selector
    return not selector.match_labels and not selector.match_expressions


def _single(index: kopf.Index[str, V]) -> dict[str, V]:
    """Index entries keyed by name hold one object each."""
    return {key: next(iter(store)) for key, store in index.items() if len(store)}
