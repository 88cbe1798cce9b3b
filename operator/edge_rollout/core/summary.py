"""The ModelDeployment status of one plan, worked out once as a `Summary` value.

Pure. Phase, conditions, counts, worstNodes and message all come from the same `Summary`, so they
cannot disagree. The rule for Ready: True only when the rollout is done and every selected node
that can run some variant (not those with no fitting variant or no agent) runs the target; nodes
that cannot make the deployment Degraded with a reason that says why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from edge_rollout.api.modeldeployment import (
    ModelDeploymentStatus,
    NodeReport,
    PhaseCounts,
    VariantCount,
)
from edge_rollout.core import steps
from edge_rollout.core.conditions import rfc3339, set_standard_conditions
from edge_rollout.core.fleet import Event, NodeOutcome, Tally
from edge_rollout.core.values import Deployment, Rollout

WORST_NODES = 10
NO_AGENT = "NoAgent"
NO_FITTING_VARIANT = "NoFittingVariant"
NODES_FAILED = "NodesFailed"
STABLE_RELEASE_UNAVAILABLE = "StableReleaseUnavailable"
"""An abort would roll back, but the stable version's release cannot be loaded: no node can be
asked back to it, so the phase is Failed, not RolledBack."""
NO_AGENT_REASONS = frozenset({"AwaitingHardwareReport", "AgentNotReporting"})
"""Choice reasons that mean no agent answers for the node: none has reported its hardware yet,
or its agent stopped reporting (`reports.hold_silent`)."""


@dataclass(frozen=True)
class Summary:
    """What the status says, worked out once: the phase, the standard conditions that are True
    and their reason, the counts, the worst nodes and the message."""

    phase: str
    done: bool
    """Every step passed and no node is left to ask or in flight (the target becomes stable)."""
    true: frozenset[str]
    reason: str
    counts: PhaseCounts
    required: int
    """Nodes that must run the target for Ready (those that can run some variant)."""
    worst: tuple[NodeReport, ...]
    message: str


def kind(outcome: NodeOutcome) -> str:
    """Why a bad node does not run the target: it failed, has no agent, or nothing fits it."""
    if outcome.state == "unschedulable":
        reason = outcome.choice.reason if outcome.choice is not None else ""
        return NO_AGENT if reason in NO_AGENT_REASONS else NO_FITTING_VARIANT
    return NO_AGENT if outcome.reported is None else NODES_FAILED


def report(outcome: NodeOutcome) -> NodeReport:
    """The worstNodes entry of a failed or unschedulable node: why, and since when."""
    reported = outcome.reported
    since = reported.last_transition_time if reported is not None else ""
    if outcome.state == "unschedulable" and outcome.choice is not None:
        phase = "NoAgent" if kind(outcome) == NO_AGENT else "Unschedulable"
        choice = outcome.choice
        return NodeReport(
            node=outcome.node, phase=phase, reason=choice.reason, message=choice.message[:1024]
        )
    error = reported.last_error if reported else None
    if reported is None:
        return NodeReport(
            node=outcome.node,
            phase="NoAgent",
            reason=NO_AGENT,
            message="no agent reported on this model within progressDeadlineSeconds: start"
            " edge-rollout-agent on the node (kubectl get edgenode shows its heartbeat)",
        )
    if error is None:
        return NodeReport(
            node=outcome.node,
            phase="Failed",
            reason="ProgressDeadlineExceeded",
            message="not Ready on the new version within progressDeadlineSeconds",
            since=since,
        )
    return NodeReport(
        node=outcome.node,
        phase="Failed",
        reason=error.reason,
        message=error.message[:1024],
        since=since,
    )


def summarize(
    deployment: Deployment,
    rollout: Rollout,
    tally: Tally,
    evidence: Sequence[NodeOutcome],
    now: datetime,
    *,
    stable_release: bool,
    waiting: str = "",
) -> tuple[ModelDeploymentStatus, tuple[Event, ...]]:
    """The next status, and the events for what changed since the previous one.

    `tally` counts the outcomes of the selected nodes; `evidence` are the failed and
    unschedulable outcomes before an abort asked them back (kept in status until the next
    version); `stable_release` says whether the stable version's release could be loaded (what
    a rollback asks the nodes for); `waiting` says what the analysis the rollout holds for has
    measured."""
    previous = deployment.status
    found = summary(deployment, rollout, tally, evidence, stable_release=stable_release)
    if waiting and rollout.verdict is None:
        found = replace(found, message=f"{found.message}; {waiting}"[:4096])
    status = previous.model_copy(
        update={
            "observed_generation": deployment.generation,
            "phase": found.phase,
            "stable_version": rollout.target if _settled(found) else rollout.stable,
            "target_version": rollout.target,
            "abort_reason": rollout.verdict or "",
            "current_step_index": rollout.progress.index,
            "step_started_at": rfc3339(rollout.progress.started),
            "counts": found.counts,
            "variants": [
                VariantCount(variant=v, nodes=n) for v, n in sorted(tally.variants.items())
            ],
            "bytes_fetched": tally.fetched,
            "bytes_reused": tally.reused,
            "worst_nodes": list(found.worst),
            "message": found.message,
        }
    )
    conditions = set_standard_conditions(
        status.conditions,
        true=found.true,
        reason=found.reason,
        message=found.message,
        generation=deployment.generation,
        now=now,
    )
    status = status.model_copy(update={"conditions": conditions})
    return status, (*_transition_events(previous, status, found), *_new_worst(previous, status))


def summary(
    deployment: Deployment,
    rollout: Rollout,
    tally: Tally,
    evidence: Sequence[NodeOutcome],
    *,
    stable_release: bool = True,
) -> Summary:
    """Phase, conditions, counts, worst nodes and message of one plan, from one tally
    (`stable_release`: the stable version's release could be loaded)."""
    states, total = tally.states, tally.total
    bad = evidence if rollout.verdict is not None else tally.bad
    kinds = Counter(map(kind, bad))
    worst = _worst(bad, deployment.status, rollout)
    failed = len(bad)
    if rollout.verdict is not None and deployment.status.target_version == rollout.target:
        failed = max(failed, deployment.status.counts.failed)
    counts = PhaseCounts(
        targeted=total,
        applied=tally.applied,
        succeeded=states["updated"],
        failed=failed,
        pending=max(0, total - states["updated"] - failed),
    )
    required = total - kinds[NO_AGENT] - kinds[NO_FITTING_VARIANT]
    done = (
        rollout.verdict is None
        and rollout.progress.index >= len(deployment.spec.strategy.steps)
        and states["old"] + states["updating"] == 0
    )
    returnable = not _unreturnable(deployment, rollout, stable_release)
    phase, true, reason = _phase(deployment, rollout, done, counts, required, kinds, returnable)
    message = _message(deployment, rollout, counts, required, kinds, returnable)
    unplaced = _unplaced(deployment, rollout, tally)
    if unplaced and returnable:
        names = ", ".join(unplaced[:3]) + (", ..." if len(unplaced) > 3 else "")
        wanted = f"{deployment.spec.model.name}@{rollout.stable}"
        message = (
            f"{message}; {len(unplaced)} node(s) run no version of it: no variant of {wanted}"
            f" fits them ({names})"
        )[:4096]
    return Summary(phase, done, true, reason, counts, required, worst, message)


def _unplaced(deployment: Deployment, rollout: Rollout, tally: Tally) -> list[str]:
    """After an abort rolled back: the nodes no variant of the stable release fits, asked for
    nothing (`NodePlanner.rolled_back`)."""
    if rollout.verdict is None or deployment.spec.abort.failure_handling_policy != "Rollback":
        return []
    return sorted(
        o.node
        for o in tally.bad
        if o.state == "unschedulable" and o.desired is None and kind(o) == NO_FITTING_VARIANT
    )


def _settled(found: Summary) -> bool:
    """The target becomes the stable version (what a rollback returns to) once the rollout is
    done and some node runs it (or no node is selected): never a version no node ever ran."""
    return found.done and (found.counts.succeeded > 0 or found.counts.targeted == 0)


def ready(counts: PhaseCounts, required: int) -> bool:
    """The rule for Ready: every node that can run some variant runs the target, and at least
    one does (or no node is selected at all)."""
    if counts.targeted == 0:
        return True
    return required > 0 and counts.succeeded >= required


def _unreturnable(deployment: Deployment, rollout: Rollout, stable_release: bool) -> bool:
    """The rollout aborted with the Rollback policy, there is a stable version to go back to,
    but its release cannot be loaded: no node is asked back (`planning._after_abort`)."""
    rollback = deployment.spec.abort.failure_handling_policy == "Rollback"
    return rollout.verdict is not None and rollback and bool(rollout.stable) and not stable_release


def _unreturnable_message(deployment: Deployment, rollout: Rollout, counts: PhaseCounts) -> str:
    model = deployment.spec.model
    wanted = f"{model.name}@{rollout.stable}"
    return (
        f"modeldeployment {deployment.key}: rollout of {rollout.target} aborted:"
        f" {rollout.verdict}; {counts.failed} node(s) failed; cannot roll back: the stable"
        f" release {wanted} cannot be loaded from spec.model.store ({model.store.url}), so no"
        f" node is asked back to it and {counts.succeeded} node(s) stay on {rollout.target}:"
        f" publish {wanted} to the store again (nodes then go back to it), or set"
        " spec.model.version to a fixed version"
    )[:4096]


def _phase(
    deployment: Deployment,
    rollout: Rollout,
    done: bool,
    counts: PhaseCounts,
    required: int,
    kinds: Counter[str],
    returnable: bool,
) -> tuple[str, frozenset[str], str]:
    """RolledBack only when the nodes are asked back to a stable release that loads."""
    if rollout.verdict is not None:
        stopped = frozenset({"Degraded", "Stalled"})
        if not returnable:
            return "Failed", stopped, STABLE_RELEASE_UNAVAILABLE
        rollback = deployment.spec.abort.failure_handling_policy == "Rollback"
        if rollback and rollout.stable:
            return "RolledBack", stopped, "RolledBack"
        return "Failed", stopped, "RolloutAborted"
    degraded = frozenset({"Degraded"}) if counts.failed else frozenset()
    if done:
        if not counts.failed:
            return "Ready", frozenset({"Ready"}), "RolloutComplete"
        reason = next(k for k in (NODES_FAILED, NO_AGENT, NO_FITTING_VARIANT) if kinds[k])
        true = degraded | ({"Ready"} if ready(counts, required) else set())
        return "Degraded", frozenset(true), reason
    if deployment.spec.paused:
        return "Paused", degraded, "RolloutPaused"
    if _at_pause(deployment, rollout):
        return "Paused", degraded | {"Progressing"}, "RolloutPausedAtStep"
    return "Progressing", degraded | {"Progressing", "Reconciling"}, "RolloutInProgress"


def _at_pause(deployment: Deployment, rollout: Rollout) -> bool:
    """The rollout waits at a pause step (with or without a duration)."""
    strategy = deployment.spec.strategy
    index = rollout.progress.index
    return index < len(strategy.steps) and strategy.steps[index].pause is not None


def _worst(
    bad: Sequence[NodeOutcome], previous: ModelDeploymentStatus, rollout: Rollout
) -> tuple[NodeReport, ...]:
    """The first WORST_NODES bad nodes by name; after an abort with those of the previous
    status too (the evidence stays until the next version)."""
    found = {o.node: report(o) for o in sorted(bad, key=lambda o: o.node)[:WORST_NODES]}
    if rollout.verdict is not None and previous.target_version == rollout.target:
        for kept in previous.worst_nodes:
            found.setdefault(kept.node, kept)
    return tuple(found[name] for name in sorted(found)[:WORST_NODES])


def _message(
    deployment: Deployment,
    rollout: Rollout,
    counts: PhaseCounts,
    required: int,
    kinds: Counter[str],
    returnable: bool,
) -> str:
    target = rollout.target
    if not returnable:
        return _unreturnable_message(deployment, rollout, counts)
    if rollout.verdict is not None:
        return (
            f"rollout of {target} aborted: {rollout.verdict}; {counts.failed} node(s) failed;"
            f" nodes run {rollout.stable or 'what they had'} until spec.model.version changes"
        )
    if counts.targeted == 0:
        return f"no nodes match spec.nodeSelector; {target} will go to nodes that match later"
    why = ", ".join(f"{kinds[k]} {_WHY[k]}" for k in (NO_FITTING_VARIANT, NO_AGENT) if kinds[k])
    failed = f"{counts.failed} failed" + (f" ({why})" if why else "")
    strategy = deployment.spec.strategy
    index = rollout.progress.index
    where = f"step {index}/{len(strategy.steps)}" + (
        f" ({steps.describe(strategy.steps[index])})" if index < len(strategy.steps) else ""
    )
    need = f"; Ready needs {required} (every node that can run a variant)" if counts.failed else ""
    return f"{counts.succeeded}/{counts.targeted} nodes on {target}, {failed}; {where}{need}"


_WHY = {NO_FITTING_VARIANT: "with no fitting variant", NO_AGENT: "with no agent"}

_EVENT_REASONS = {
    "Ready": "RolloutComplete",
    "Degraded": "RolloutCompleteWithFailures",
    "Progressing": "RolloutProgressing",
    "Paused": "RolloutPaused",
    "RolledBack": "RolledBack",
    "Failed": "RolloutFailed",
}


def _transition_events(
    previous: ModelDeploymentStatus, status: ModelDeploymentStatus, found: Summary
) -> tuple[Event, ...]:
    if previous.phase == status.phase and previous.target_version == status.target_version:
        return ()
    kind_: Literal["Normal", "Warning"] = (
        "Warning" if status.phase in ("RolledBack", "Failed", "Degraded") else "Normal"
    )
    reason = found.reason if status.phase == "Degraded" else _EVENT_REASONS[status.phase]
    return (Event(kind_, reason, status.message),)


def _new_worst(previous: ModelDeploymentStatus, status: ModelDeploymentStatus) -> tuple[Event, ...]:
    """A Warning for each node that newly joined the worst nodes (why it cannot update)."""
    seen = {(n.node, n.reason) for n in previous.worst_nodes}
    names = {"Unschedulable": "NodeUnschedulable", "NoAgent": "NodeHasNoAgent"}
    return tuple(
        Event(
            "Warning", names.get(n.phase, "NodeFailed"), f"node {n.node}: {n.reason}: {n.message}"
        )
        for n in status.worst_nodes
        if (n.node, n.reason) not in seen
    )
