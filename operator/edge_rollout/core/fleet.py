"""Fleet bookkeeping for the planner: EdgeNode entries, and the status and events a plan reports.

Pure. `summarize` turns per-node outcomes into the ModelDeployment status (counts by outcome and
variant, bytes fetched vs reused, the worst nodes, kstatus-compatible conditions) and the events
of the transitions since the previous status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import TYPE_CHECKING, Literal

from edge_rollout.api.common import Condition
from edge_rollout.api.edgenode import DesiredModel, ModelStatus
from edge_rollout.api.modeldeployment import (
    ModelDeploymentStatus,
    NodeReport,
    PhaseCounts,
    VariantCount,
)
from edge_rollout.api.release import Release
from edge_rollout.core import selection, steps
from edge_rollout.core.conditions import rfc3339, set_standard_conditions

if TYPE_CHECKING:
    from edge_rollout.core.planning import Deployment

NodeState = Literal["old", "updating", "updated", "failed", "unschedulable"]
WORST_NODES = 10


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the ModelDeployment."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class NodeOutcome:
    """Where one selected node stands with the target version, and the entry it should have."""

    node: str
    state: NodeState
    desired: DesiredModel | None
    choice: selection.Choice | None
    reported: ModelStatus | None


def desired_entry(
    deployment: Deployment,
    release: Release,
    choice: selection.Choice,
    *,
    keep: str,
    requested_at: str,
    excluded: Sequence[str],
) -> DesiredModel:
    """A fresh EdgeNode entry asking for `choice` of `release`."""
    assert choice.variant is not None
    variant = release.variant(choice.variant)
    assert variant is not None
    spec = deployment.spec
    return DesiredModel(
        name=deployment.key,
        model=spec.model.name,
        version=release.version,
        variant=variant.name,
        manifest_digest=variant.manifest_digest,
        store_url=spec.model.store.url,
        public_key=spec.model.store.public_key,
        priority=spec.priority,
        keep_version=keep if keep != release.version else "",
        window=spec.update_policy.window,
        delivery=spec.update_policy.delivery,
        require_test_vectors=spec.health_gate.require_test_vectors,
        memory_bytes=choice.memory_bytes,
        requested_at=requested_at,
        excluded_variants=list(excluded),
    )


def refresh_entry(deployment: Deployment, desired: DesiredModel) -> DesiredModel:
    """The same version and variant with the policy fields the spec has now."""
    return with_fields(desired, policy_fields(deployment))


def with_fields(desired: DesiredModel, fields: Mapping[str, object]) -> DesiredModel:
    """`desired` with `fields` set; the same object when they already have those values."""
    if tuple(map(getattr, repeat(desired), fields)) == tuple(fields.values()):
        return desired
    return desired.model_copy(update=fields)


def policy_fields(deployment: Deployment) -> dict[str, object]:
    """The fields of every entry that follow the spec as it is now (not the version asked)."""
    spec = deployment.spec
    return {
        "store_url": spec.model.store.url,
        "public_key": spec.model.store.public_key,
        "priority": spec.priority,
        "window": spec.update_policy.window,
        "delivery": spec.update_policy.delivery,
        "require_test_vectors": spec.health_gate.require_test_vectors,
    }


def summarize(
    deployment: Deployment,
    stable: str,
    target: str,
    progress: steps.StepProgress,
    verdict: str | None,
    tally: Tally,
    now: datetime,
) -> tuple[ModelDeploymentStatus, tuple[Event, ...]]:
    """The next status, and the events for what changed since the previous one.

    `verdict` is why the rollout is aborted (None while it is not); `tally` counts the outcomes
    of the selected nodes.
    """
    previous = deployment.status
    aborted = verdict is not None
    states = tally.states
    done = (
        not aborted
        and progress.index >= len(deployment.spec.strategy.steps)
        and states["old"] + states["updating"] == 0
    )
    phase = _phase(deployment, stable, aborted, done, states)
    status = previous.model_copy(
        update={
            "observed_generation": deployment.generation,
            "phase": phase,
            "stable_version": target if done else stable,
            "target_version": target,
            "abort_reason": verdict or "",
            "current_step_index": progress.index,
            "step_started_at": rfc3339(progress.started),
            "counts": _counts(tally),
            "variants": _variants(tally),
            "bytes_fetched": tally.fetched,
            "bytes_reused": tally.reused,
            "worst_nodes": _worst(tally.bad),
            "message": _message(deployment, stable, verdict, target, progress, states, tally.total),
        }
    )
    status = status.model_copy(update={"conditions": _conditions(status, deployment, now)})
    return status, (*_transition_events(previous, status), *_new_worst_events(previous, status))


def _phase(
    deployment: Deployment, stable: str, aborted: bool, done: bool, states: Counter[str]
) -> str:
    if aborted:
        rollback = deployment.spec.abort.failure_handling_policy == "Rollback"
        return "RolledBack" if rollback and stable else "Failed"
    if done:
        return "Degraded" if states["failed"] or states["unschedulable"] else "Ready"
    if deployment.spec.paused:
        return "Paused"
    return "Progressing"


@dataclass(frozen=True)
class Tally:
    """Outcomes counted: by state, and for the target version by variant and bytes. Tallies add
    and subtract, so a plan can count only the nodes whose outcome changed."""

    target: str
    states: Counter[str]
    applied: int
    """Nodes whose entry asks for the target version."""
    variants: Counter[str]
    """Nodes asked for the target, by variant."""
    fetched: int
    reused: int
    bad: tuple[NodeOutcome, ...]
    """Failed and unschedulable nodes."""

    @property
    def total(self) -> int:
        return sum(self.states.values())

    def plus(self, outcomes: Iterable[NodeOutcome]) -> Tally:
        more = tally(outcomes, self.target)
        return Tally(
            self.target,
            self.states + more.states,
            self.applied + more.applied,
            self.variants + more.variants,
            self.fetched + more.fetched,
            self.reused + more.reused,
            (*self.bad, *more.bad),
        )

    def minus(self, outcomes: Iterable[NodeOutcome]) -> Tally:
        """Without `outcomes`, which were counted."""
        less = tally(outcomes, self.target)
        return Tally(
            self.target,
            self.states - less.states,
            self.applied - less.applied,
            self.variants - less.variants,
            self.fetched - less.fetched,
            self.reused - less.reused,
            _without(self.bad, less.bad),
        )


BAD: tuple[NodeState, ...] = ("failed", "unschedulable")


def tally(outcomes: Iterable[NodeOutcome], target: str) -> Tally:
    """The outcomes counted in one pass."""
    states: Counter[str] = Counter()
    variants: Counter[str] = Counter()
    applied = fetched = reused = 0
    bad = []
    for o in outcomes:
        states[o.state] += 1
        desired, reported = o.desired, o.reported
        if desired is not None and desired.version == target:
            applied += 1
            variants[desired.variant] += 1
        if reported is not None and reported.version == target:
            fetched += reported.bytes_fetched
            reused += reported.bytes_reused
        if o.state in BAD:
            bad.append(o)
    return Tally(target, states, applied, variants, fetched, reused, tuple(bad))


def _without(
    bad: tuple[NodeOutcome, ...], gone: tuple[NodeOutcome, ...]
) -> tuple[NodeOutcome, ...]:
    """`bad` less one occurrence of each of `gone` (the same objects)."""
    if not gone:
        return bad
    left = Counter(map(id, gone))
    kept = []
    for o in bad:
        if left[id(o)] > 0:
            left[id(o)] -= 1
        else:
            kept.append(o)
    return tuple(kept)


def _counts(tally: Tally) -> PhaseCounts:
    states = tally.states
    targeted = sum(states.values())
    failed = states["failed"] + states["unschedulable"]
    return PhaseCounts(
        targeted=targeted,
        applied=tally.applied,
        succeeded=states["updated"],
        failed=failed,
        pending=targeted - states["updated"] - failed,
    )


def _variants(tally: Tally) -> list[VariantCount]:
    return [VariantCount(variant=v, nodes=n) for v, n in sorted(tally.variants.items())]


def _worst(bad: Sequence[NodeOutcome]) -> list[NodeReport]:
    return [_report(o) for o in sorted(bad, key=lambda o: o.node)[:WORST_NODES]]


def _report(outcome: NodeOutcome) -> NodeReport:
    if outcome.state == "unschedulable" and outcome.choice is not None:
        return NodeReport(
            node=outcome.node,
            phase="Unschedulable",
            reason=outcome.choice.reason,
            message=outcome.choice.message[:1024],
        )
    error = outcome.reported.last_error if outcome.reported else None
    if error is None:
        return NodeReport(
            node=outcome.node,
            phase="Failed",
            reason="ProgressDeadlineExceeded",
            message="not Ready on the new version within progressDeadlineSeconds",
        )
    return NodeReport(
        node=outcome.node, phase="Failed", reason=error.reason, message=error.message[:1024]
    )


def _message(
    deployment: Deployment,
    stable: str,
    verdict: str | None,
    target: str,
    progress: steps.StepProgress,
    states: Counter[str],
    total: int,
) -> str:
    if verdict is not None:
        return (
            f"rollout of {target} aborted: {verdict}; nodes run "
            f"{stable or 'what they had'} until spec.model.version changes"
        )
    updated = states["updated"]
    if total == 0:
        return f"no nodes match spec.nodeSelector; {target} will go to nodes that match later"
    strategy = deployment.spec.strategy
    where = f"step {progress.index}/{len(strategy.steps)}" + (
        f" ({steps.describe(strategy.steps[progress.index])})"
        if progress.index < len(strategy.steps)
        else ""
    )
    return f"{updated}/{total} nodes on {target}, {states['failed']} failed; {where}"


PHASE_CONDITIONS: dict[str, tuple[frozenset[str], str]] = {
    "Ready": (frozenset({"Ready"}), "RolloutComplete"),
    "Degraded": (frozenset({"Ready", "Degraded"}), "RolloutCompleteWithFailures"),
    "Progressing": (frozenset({"Progressing", "Reconciling"}), "RolloutInProgress"),
    "Paused": (frozenset(), "RolloutPaused"),
    "RolledBack": (frozenset({"Degraded", "Stalled"}), "RolledBack"),
    "Failed": (frozenset({"Degraded", "Stalled"}), "RolloutAborted"),
}
"""Per phase: the standard conditions that are True (the others are False), and the reason."""


def _conditions(
    status: ModelDeploymentStatus, deployment: Deployment, now: datetime
) -> list[Condition]:
    true, reason = PHASE_CONDITIONS[status.phase]
    return set_standard_conditions(
        status.conditions,
        true=true,
        reason=reason,
        message=status.message,
        generation=deployment.generation,
        now=now,
    )


def _new_worst_events(
    previous: ModelDeploymentStatus, status: ModelDeploymentStatus
) -> tuple[Event, ...]:
    """A Warning for each node that newly joined the worst nodes (why it cannot update)."""
    seen = {(n.node, n.reason) for n in previous.worst_nodes}
    return tuple(
        Event(
            "Warning",
            "NodeUnschedulable" if n.phase == "Unschedulable" else "NodeFailed",
            f"node {n.node}: {n.reason}: {n.message}",
        )
        for n in status.worst_nodes
        if (n.node, n.reason) not in seen
    )


def _transition_events(
    previous: ModelDeploymentStatus, status: ModelDeploymentStatus
) -> tuple[Event, ...]:
    if previous.phase == status.phase and previous.target_version == status.target_version:
        return ()
    kind: Literal["Normal", "Warning"] = (
        "Warning" if status.phase in ("RolledBack", "Failed", "Degraded") else "Normal"
    )
    reason = {
        "Ready": "RolloutComplete",
        "Degraded": "RolloutCompleteWithFailures",
        "Progressing": "RolloutProgressing",
        "Paused": "RolloutPaused",
        "RolledBack": "RolledBack",
        "Failed": "RolloutFailed",
    }.get(status.phase, "Rollout")
    return (Event(kind, reason, status.message),)
