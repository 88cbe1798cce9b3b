"""Rollout planning: from the spec, the releases and what the nodes report, decide what each
node should run now and what the ModelDeployment status says.

Pure and deterministic: everything comes in as arguments (including `now`); the result is a
`Plan` with the desired EdgeNode entries, the next status and the events. Progress lives in the
status and the EdgeNode entries, so planning again from `plan.status` with the same nodes changes
nothing, and a restarted operator continues at the same step.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge_rollout.api.common import LabelSelector
from edge_rollout.api.edgenode import DesiredModel, Hardware, ModelStatus
from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from edge_rollout.api.release import Release
from edge_rollout.core import abort as abort_rules
from edge_rollout.core import fleet, selection, steps
from edge_rollout.core import labels as node_labels
from edge_rollout.core.conditions import rfc3339
from edge_rollout.core.fleet import Event, NodeOutcome, NodeState

__all__ = ["Deployment", "Event", "NodeInput", "Plan", "plan_rollout"]


@dataclass(frozen=True)
class NodeInput:
    """One node as gathered: its labels and hardware, and this deployment's entries on it."""

    name: str
    labels: Mapping[str, str]
    hardware: Hardware
    desired: DesiredModel | None = None
    reported: ModelStatus | None = None
    claims: tuple[DesiredModel, ...] = ()
    """Entries of other deployments that take precedence on this node (memory packing)."""

    @functools.cached_property
    def memo(self) -> dict[tuple[object, ...], object]:
        """What the planner worked out about this node (selector matches, variant choices,
        refreshed entries), by everything it depends on besides the node. The gatherer hands
        the planner the same NodeInput while the node's objects do not change, so each is worked
        out once, not on every replan. Not part of the value (equality, repr)."""
        return {}


@dataclass(frozen=True)
class Deployment:
    """The ModelDeployment being planned."""

    key: str
    """`<namespace>/<name>`, the key of its EdgeNode entries."""
    generation: int
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus


@dataclass(frozen=True)
class Plan:
    """What to write: EdgeNode entries (None removes one), the status, the events."""

    desired: dict[str, DesiredModel | None]
    status: ModelDeploymentStatus
    events: tuple[Event, ...]
    choices: dict[str, selection.Choice] = field(default_factory=dict)


@dataclass(frozen=True)
class _Rollout:
    stable: str
    target: str
    progress: steps.StepProgress
    verdict: str | None
    """Why the rollout is aborted; None while it is not."""

    @property
    def aborted(self) -> bool:
        return self.verdict is not None


def plan_rollout(
    deployment: Deployment,
    releases: Mapping[str, Release],
    nodes: Sequence[NodeInput],
    now: datetime,
) -> Plan:
    """Plan one reconcile of `deployment` over `nodes`.

    `releases` holds the target version's release and, when known, the stable one's.

    Worked example: 10 selected nodes on 1.0 (stable), spec asks for 1.1 with steps
    [setNodePercent 20, pause {}] and maxUnavailable 25% (= 2): the first plan asks 2 nodes
    (canary-labelled ones first, then by name) to run 1.1; when both report Ready for
    minReadySeconds the step completes and the rollout waits at the pause until spec approves it;
    after the last step the other 8 follow, 2 at a time. If 1 of those 2 fails and the abort
    criterion is 50% of at least 2 finished nodes, every node is asked back to 1.0 and the status
    says RolledBack until spec.model.version changes.
    """
    spec = deployment.spec
    rollout = _rollout_state(deployment, now)
    selects = _Matcher(spec.node_selector)
    selected = _order(spec, [n for n in nodes if selects(n)])
    target = releases[rollout.target]
    stable = releases.get(rollout.stable)
    planner = _Planner(deployment, rollout, target, stable, now)
    outcomes = [planner.outcome(node) for node in selected]
    rollout = planner.progress(rollout, outcomes, len(selected))
    outcomes = planner.ask(rollout, selected, outcomes)
    desired = {o.node: o.desired for o in outcomes}
    selected_names = set(desired)
    desired.update({n.name: None for n in nodes if n.desired and n.name not in selected_names})
    status, events = fleet.summarize(
        deployment, rollout.stable, rollout.target, rollout.progress, rollout.verdict, outcomes, now
    )
    return Plan(
        desired,
        status,
        (*planner.events, *events),
        {o.node: o.choice for o in outcomes if o.choice},
    )


def _rollout_state(deployment: Deployment, now: datetime) -> _Rollout:
    previous = deployment.status
    target = deployment.spec.model.version
    if previous.target_version == target:
        started = _parse(previous.step_started_at) or now
        verdict = previous.abort_reason or None
        return _Rollout(
            previous.stable_version,
            target,
            steps.StepProgress(previous.current_step_index, started),
            verdict,
        )
    completed = previous.target_version and previous.target_version == previous.stable_version
    stable = previous.target_version if completed else previous.stable_version
    # Going back to the stable version (a revert in Git) is no new rollout: no steps, no pauses.
    first = len(deployment.spec.strategy.steps) if target == stable else 0
    return _Rollout(stable, target, steps.StepProgress(first, now), None)


def _order(spec: ModelDeploymentSpec, nodes: list[NodeInput]) -> list[NodeInput]:
    if spec.strategy.canary_selector is None:
        return sorted(nodes, key=lambda node: node.name)
    canary = _Matcher(spec.strategy.canary_selector)

    def first(node: NodeInput) -> tuple[int, str]:
        return (0 if canary(node) else 1), node.name

    return sorted(nodes, key=first)


class _Matcher:
    """`selector_matches(selector, node.labels)`, worked out once per node and selector."""

    def __init__(self, selector: LabelSelector) -> None:
        self.selector = selector
        self.key = ("selects", node_labels.selector_key(selector))

    def __call__(self, node: NodeInput) -> bool:
        memo = node.memo
        found = memo.get(self.key)
        if found is None:
            found = memo[self.key] = node_labels.selector_matches(self.selector, node.labels)
            _bound(memo)
        return found is True


def _bound(memo: dict[tuple[object, ...], object]) -> None:
    if len(memo) > MEMO_LIMIT:
        memo.clear()


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


MEMO_LIMIT = 64
"""Facts kept per NodeInput (a few per spec and release the node has seen)."""


@dataclass(frozen=True)
class _Remembered:
    """An outcome worked out for a node, valid for `release` once `ready_since` (if any) is at
    least minReadySeconds ago."""

    release: Release
    ready_since: datetime | None
    outcome: NodeOutcome

    def valid(self, release: Release, ready_before: datetime) -> bool:
        return release is self.release and (
            self.ready_since is None or self.ready_since <= ready_before
        )


FINISHED = ("updated", "failed", "unschedulable")
"""A node has finished with the target when it is Ready long enough, or nothing more can be tried.
Failures below the abort threshold do not hold a step back: abort criteria decide."""


class _Planner:
    """Per-node decisions for one plan; collects events as it goes."""

    def __init__(
        self,
        deployment: Deployment,
        rollout: _Rollout,
        target: Release,
        stable: Release | None,
        now: datetime,
    ) -> None:
        self.deployment = deployment
        self.spec = deployment.spec
        self.target = target
        self.stable = stable
        self.rollout = rollout
        self.now = now
        self.events: list[Event] = []
        self._choices: dict[tuple[str, tuple[object, ...]], selection.Choice] = {}
        self._policy = self.spec.selection.model_dump_json()
        self._refreshed = fleet.policy_fields(deployment)
        self._refreshed_key = ("refreshed", repr(self._refreshed))
        strategy = self.spec.strategy
        self._asked_before = now - timedelta(seconds=strategy.progress_deadline_seconds)
        """Nodes asked at or before this are past their progress deadline."""
        self._ready_before = now - timedelta(seconds=strategy.min_ready_seconds)
        """Nodes Ready since this or earlier have been Ready for minReadySeconds."""
        self._outcome_key = ("outcome", rollout.target, self._policy, self._refreshed_key[1])

    def outcome(self, node: NodeInput) -> NodeOutcome:
        """Where the node stands with the target version (before anyone new is asked).

        Most nodes stand where they stood at the last plan: updated (Ready long enough, which
        stays true as time passes) or not yet asked for the target while keeping their entry.
        Those outcomes depend on nothing but the node, the target release, the selection policy
        and the entry's policy fields, so they are worked out once per NodeInput."""
        memo = node.memo
        found = memo.get(self._outcome_key)
        if isinstance(found, _Remembered) and found.valid(self.target, self._ready_before):
            return found.outcome
        outcome = self._outcome(node)
        if outcome.state in ("old", "unschedulable") and node.desired is not None:
            memo[self._outcome_key] = _Remembered(self.target, None, outcome)
        elif outcome.state == "updated" and node.reported is not None:
            since = _parse(node.reported.ready_since)
            memo[self._outcome_key] = _Remembered(self.target, since, outcome)
        _bound(memo)
        return outcome

    def _outcome(self, node: NodeInput) -> NodeOutcome:
        desired = node.desired
        if desired is None or desired.version != self.rollout.target:
            return self._not_on_target(node)
        reported = node.reported
        if _failed(desired, reported) or self._timed_out(desired, reported):
            return self._fall_back(node, desired, reported)
        state: NodeState = "updated" if self._ready_long_enough(desired, reported) else "updating"
        choice = self._choose(node, self.target, desired.excluded_variants)
        if state == "updated" and choice.variant and choice.variant != desired.variant:
            return self._entry(node, choice, desired.excluded_variants)
        return NodeOutcome(node.name, state, self._refresh(desired, node), choice, reported)

    def _not_on_target(self, node: NodeInput) -> NodeOutcome:
        choice = self._choose(node, self.target, ())
        if choice.variant is None:
            return NodeOutcome(
                node.name, "unschedulable", self._stable_entry(node), choice, node.reported
            )
        return NodeOutcome(node.name, "old", self._stable_entry(node), choice, node.reported)

    def _fall_back(
        self, node: NodeInput, desired: DesiredModel, reported: ModelStatus | None
    ) -> NodeOutcome:
        excluded = sorted({*desired.excluded_variants, desired.variant})
        choice = self._choose(node, self.target, excluded)
        if choice.variant is None or self.rollout.aborted:
            failed = desired.model_copy(update={"excluded_variants": excluded})
            return NodeOutcome(node.name, "failed", self._refresh(failed), choice, reported)
        self.events.append(
            Event(
                "Warning",
                "VariantFallback",
                f"node {node.name}: {desired.variant} failed "
                f"({_error(reported)}); trying {choice.variant}",
            )
        )
        return self._entry(node, choice, excluded)

    def _entry(
        self, node: NodeInput, choice: selection.Choice, excluded: Sequence[str]
    ) -> NodeOutcome:
        """Ask the node for `choice` of the target, from now on."""
        assert choice.variant is not None
        entry = fleet.desired_entry(
            self.deployment,
            self.target,
            choice,
            keep=self.rollout.stable,
            requested_at=rfc3339(self.now),
            excluded=excluded,
        )
        return NodeOutcome(node.name, "updating", entry, choice, node.reported)

    def _stable_entry(self, node: NodeInput, rollback: bool = False) -> DesiredModel | None:
        """The entry of a node not (yet) on the target: what it has, else the stable version.

        A node keeps the version it was given (say, of a rollout the spec moved on from) until it
        is asked for the target, so it does not go back and forth; on `rollback` it is asked for
        the stable version. Without a usable stable release, nothing is taken away.
        """
        desired = node.desired
        stable = self.stable
        if desired is not None and (
            not rollback or stable is None or desired.version == stable.version
        ):
            return self._refresh(desired, node)
        if stable is None:
            return desired
        choice = self._choose(node, stable, ())
        if choice.variant is None:
            return desired
        return fleet.desired_entry(
            self.deployment, stable, choice, keep="", requested_at=rfc3339(self.now), excluded=()
        )

    def _refresh(self, desired: DesiredModel, node: NodeInput | None = None) -> DesiredModel:
        """The same version and variant, with the policy fields the spec has now (worked out
        once per spec when it is the node's own entry)."""
        if node is None or desired is not node.desired:
            return fleet.with_fields(desired, self._refreshed)
        memo = node.memo
        found = memo.get(self._refreshed_key)
        if found is None:
            found = memo[self._refreshed_key] = fleet.with_fields(desired, self._refreshed)
            _bound(memo)
        assert isinstance(found, DesiredModel)
        return found

    def _choose(
        self, node: NodeInput, release: Release, excluded: Sequence[str]
    ) -> selection.Choice:
        memo = node.memo
        key = ("choice", release.version, self._policy, tuple(excluded))
        found = memo.get(key)
        if isinstance(found, tuple) and found[0] is release:
            choice: selection.Choice = found[1]
            return choice
        choice = self._select(node, release, excluded)
        memo[key] = (release, choice)
        _bound(memo)
        return choice

    def _select(
        self, node: NodeInput, release: Release, excluded: Sequence[str]
    ) -> selection.Choice:
        """Nodes with equal profiles get equal choices: select once per profile in a plan."""
        facts = selection.NodeFacts(node.name, node.labels, node.hardware)
        policy = self.spec.selection
        budget = selection.memory_budget(node.hardware, policy, node.claims)
        key = (release.version, selection.profile_key(facts, policy, budget, excluded))
        cached = self._choices.get(key)
        if cached is None:
            cached = selection.select_variant(facts, release, policy, budget, excluded)
            self._choices[key] = cached
        return cached.for_node(node.name)

    def _timed_out(self, desired: DesiredModel, reported: ModelStatus | None) -> bool:
        if _active(desired, reported):
            return False
        asked = _parse(desired.requested_at)
        return asked is not None and asked <= self._asked_before

    def _ready_long_enough(self, desired: DesiredModel, reported: ModelStatus | None) -> bool:
        if reported is None or not _active(desired, reported):
            return False
        since = _parse(reported.ready_since)
        return since is not None and since <= self._ready_before

    def progress(self, rollout: _Rollout, outcomes: list[NodeOutcome], total: int) -> _Rollout:
        """Abort if the criteria say so; otherwise move past the steps that are complete."""
        if rollout.aborted:
            return rollout
        verdict = abort_rules.evaluate(self.spec.abort, outcomes)
        if verdict is not None:
            self.events.append(Event("Warning", "RolloutAborted", verdict))
            return _Rollout(rollout.stable, rollout.target, rollout.progress, verdict)
        if self.spec.paused:
            return rollout
        updated = sum(1 for o in outcomes if o.state == "updated")
        finished = sum(1 for o in outcomes if o.state in FINISHED)
        moved = steps.advance(
            self.spec.strategy,
            rollout.progress,
            finished=finished,
            total=total,
            version=rollout.target,
            now=self.now,
        )
        for index in range(rollout.progress.index, moved.index):
            self.events.append(
                Event(
                    "Normal",
                    "StepCompleted",
                    f"step {index} ({steps.describe(self.spec.strategy.steps[index])})"
                    f" complete: {updated}/{total} nodes on {rollout.target}",
                )
            )
        return _Rollout(rollout.stable, rollout.target, moved, None)

    def ask(
        self, rollout: _Rollout, nodes: list[NodeInput], outcomes: list[NodeOutcome]
    ) -> list[NodeOutcome]:
        """Ask the next nodes in order to move to the target, within goal and maxUnavailable."""
        if rollout.aborted:
            return self._after_abort(nodes, outcomes)
        if self.spec.paused:
            return outcomes
        total = len(outcomes)
        on_target = sum(1 for o in outcomes if o.state in ("updated", "updating", "failed"))
        in_flight = sum(1 for o in outcomes if o.state == "updating")
        room = min(
            steps.goal_at(self.spec.strategy, rollout.progress.index, total) - on_target,
            steps.max_unavailable(self.spec.strategy, total) - in_flight,
        )
        by_name = {n.name: n for n in nodes}
        result = []
        for outcome in outcomes:
            if room > 0 and outcome.state == "old" and outcome.choice is not None:
                outcome = self._entry(by_name[outcome.node], outcome.choice, ())
                room -= 1
            result.append(outcome)
        return result

    def _after_abort(
        self, nodes: list[NodeInput], outcomes: list[NodeOutcome]
    ) -> list[NodeOutcome]:
        if self.spec.abort.failure_handling_policy != "Rollback" or self.stable is None:
            return outcomes
        by_name = {n.name: n for n in nodes}
        return [
            o
            if o.state == "old"
            else NodeOutcome(
                o.node,
                "old",
                self._stable_entry(by_name[o.node], rollback=True),
                o.choice,
                o.reported,
            )
            for o in outcomes
        ]


def _active(desired: DesiredModel, reported: ModelStatus | None) -> bool:
    """The node serves exactly the desired version and variant, and is Ready."""
    return (
        reported is not None
        and reported.phase == "Ready"
        and reported.active_version == desired.version
        and reported.active_variant == desired.variant
    )


def _failed(desired: DesiredModel, reported: ModelStatus | None) -> bool:
    return (
        reported is not None
        and reported.phase == "Failed"
        and reported.version == desired.version
        and reported.variant == desired.variant
    )


def _error(reported: ModelStatus | None) -> str:
    if reported is None or reported.last_error is None:
        return "progress deadline exceeded"
    return reported.last_error.reason
