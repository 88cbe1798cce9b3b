"""Per-node decisions of one plan: where each selected node stands with the target version, the
entry it should have, and the variant fallbacks (as events).

Pure: everything comes from the deployment, the releases and `now`. What lasts (see `lasts`) is
remembered in the deployment's `memo.NodeMemo` (part of the caller's `caching.PlannerCache`), so
a node whose objects did not change is worked out once, not on every replan; planning with an
empty memo gives the same outcomes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge_rollout.api import reasons
from edge_rollout.api.edgenode import DesiredModel, ModelStatus
from edge_rollout.api.release import Release
from edge_rollout.core import fleet, labels, memo, selection
from edge_rollout.core.conditions import rfc3339
from edge_rollout.core.values import Deployment, Event, NodeInput, NodeOutcome, NodeState
from edge_rollout.core.values import Rollout as Rollout


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def lasts(node: NodeInput, outcome: NodeOutcome) -> bool:
    """The outcome stays what it is for this node, target release, selection policy and policy
    fields, whatever `now` (an updated one: while its readySince is minReadySeconds old): nodes
    not yet asked that keep their entry, and nodes Ready on the target long enough."""
    if outcome.state in ("old", "unschedulable"):
        return node.desired is not None
    return outcome.state == "updated" and node.reported is not None


def ready_since(node: NodeInput) -> datetime | None:
    """When the node's report says it became Ready."""
    return parse(node.reported.ready_since) if node.reported is not None else None


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


class NodePlanner:
    """Per-node decisions for one plan; collects events as it goes."""

    def __init__(
        self,
        deployment: Deployment,
        rollout: Rollout,
        target: Release,
        stable: Release | None,
        now: datetime,
        nodes: memo.NodeMemo | None = None,
    ) -> None:
        self.deployment = deployment
        self.nodes = nodes if nodes is not None else memo.NodeMemo()
        """What was worked out about each node at earlier plans (the caller's cache)."""
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
        min_ready = 0 if rollout.target == rollout.stable else strategy.min_ready_seconds
        self.ready_before = now - timedelta(seconds=min_ready)
        """Nodes Ready since this or earlier have been Ready for minReadySeconds (at once when
        going back to the stable version: it served before, a rollback must not wait)."""
        self.outcome_key = ("outcome", rollout.target, self._policy, self._refreshed_key[1])
        """Everything a lasting outcome depends on besides the node and the target release."""

    def outcome(self, node: NodeInput) -> NodeOutcome:
        """Where the node stands with the target version (before anyone new is asked).

        Most nodes stand where they stood at the last plan: updated (Ready long enough, which
        stays true as time passes) or not yet asked for the target while keeping their entry.
        Those outcomes depend on nothing but the node, the target release, the selection policy
        and the entry's policy fields, so they are worked out once per NodeInput."""
        facts = self.nodes.facts(node)
        found = facts.get(self.outcome_key)
        if isinstance(found, _Remembered) and found.valid(self.target, self.ready_before):
            return found.outcome
        outcome = self._outcome(node)
        if lasts(node, outcome):
            since = ready_since(node) if outcome.state == "updated" else None
            memo.remember_fact(facts, self.outcome_key, _Remembered(self.target, since, outcome))
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
            return self.entry(node, choice, desired.excluded_variants)
        return NodeOutcome(node.name, state, self._refresh(desired, node), choice, reported)

    def _not_on_target(self, node: NodeInput) -> NodeOutcome:
        choice = self._choose(node, self.target, ())
        if choice.variant is None:
            return NodeOutcome(
                node.name, "unschedulable", self.stable_entry(node), choice, node.reported
            )
        return NodeOutcome(node.name, "old", self.stable_entry(node), choice, node.reported)

    def _fall_back(
        self, node: NodeInput, desired: DesiredModel, reported: ModelStatus | None
    ) -> NodeOutcome:
        excluded = sorted({*desired.excluded_variants, desired.variant})
        choice = self._choose(node, self.target, excluded)
        if choice.variant is None or self.rollout.aborted or not _may_fall_back(reported):
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
        return self.entry(node, choice, excluded)

    def entry(
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

    def stable_entry(self, node: NodeInput, rollback: bool = False) -> DesiredModel | None:
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

    def rolled_back(self, node: NodeInput, outcome: NodeOutcome) -> NodeOutcome:
        """Where an abort's rollback puts a node that is not on the stable version: asked for
        the stable variant that fits it or, when none does (it came during the rollout, or its
        memory shrank), off this deployment, unschedulable for the stable release: where the
        stable fleet has it, never left on the aborted version."""
        stable, desired = self.stable, node.desired
        if stable is not None and (desired is None or desired.version != stable.version):
            choice = self._choose(node, stable, ())  # remembered: stable_entry asks again
            if choice.variant is None:
                return NodeOutcome(node.name, "unschedulable", None, choice, outcome.reported)
        entry = self.stable_entry(node, rollback=True)
        return NodeOutcome(node.name, "old", entry, outcome.choice, outcome.reported)

    def _refresh(self, desired: DesiredModel, node: NodeInput | None = None) -> DesiredModel:
        """The same version and variant, with the policy fields the spec has now (worked out
        once per spec when it is the node's own entry)."""
        if node is None or desired is not node.desired:
            return fleet.with_fields(desired, self._refreshed)
        facts = self.nodes.facts(node)
        found = facts.get(self._refreshed_key)
        if found is None:
            found = fleet.with_fields(desired, self._refreshed)
            memo.remember_fact(facts, self._refreshed_key, found)
        assert isinstance(found, DesiredModel)
        return found

    def _choose(
        self, node: NodeInput, release: Release, excluded: Sequence[str]
    ) -> selection.Choice:
        key = ("choice", release.version, self._policy, tuple(excluded))
        facts = self.nodes.facts(node)
        found = facts.get(key)
        if isinstance(found, tuple) and found[0] is release:
            choice: selection.Choice = found[1]
            return choice
        choice = self._select(node, release, excluded)
        memo.remember_fact(facts, key, (release, choice))
        return choice

    def _select(
        self, node: NodeInput, release: Release, excluded: Sequence[str]
    ) -> selection.Choice:
        """Nodes with equal profiles get equal choices: select once per profile in a plan.
        None before the node's agent has reported its hardware (see `awaiting_report`)."""
        if node.hardware.profile == labels.LABELS_PROFILE:
            return awaiting_report(node.name)
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
        asked = parse(desired.requested_at)
        return asked is not None and asked <= self._asked_before

    def _ready_long_enough(self, desired: DesiredModel, reported: ModelStatus | None) -> bool:
        if reported is None or not _active(desired, reported):
            return False
        since = parse(reported.ready_since)
        return since is not None and since <= self.ready_before


SERVING = ("Ready", "RolledBack")
"""Phases in which the agent serves its active version (RolledBack: a kept version, switched
back to from disk)."""


AWAITING_REPORT = "AwaitingHardwareReport"


def awaiting_report(node: str) -> selection.Choice:
    """No variant for a node whose hardware the operator does not know: labels alone could pick
    one the node cannot run best (a GPU node without GPU labels would be asked for fp32, then
    moved to fp16 once its agent reports). The node waits, named in worstNodes."""
    return selection.Choice(
        node,
        None,
        AWAITING_REPORT,
        f"node {node}: waiting for its agent's hardware report; no variant is chosen before it"
        " (start the agent on the node, or see why it cannot reach the apiserver)",
    )


def _active(desired: DesiredModel, reported: ModelStatus | None) -> bool:
    """The node serves exactly the desired version and variant (Ready, or RolledBack to it)."""
    return (
        reported is not None
        and reported.phase in SERVING
        and reported.active_version == desired.version
        and reported.active_variant == desired.variant
    )


def _failed(desired: DesiredModel, reported: ModelStatus | None) -> bool:
    """The agent gave up on the desired version and variant (a transient failure, which it
    retries on its own, is still in progress)."""
    return (
        reported is not None
        and reported.phase == "Failed"
        and reported.version == desired.version
        and reported.variant == desired.variant
        and reasons.failure_scope(_error(reported)) != "transient"
    )


def _may_fall_back(reported: ModelStatus | None) -> bool:
    """Another variant may work: the failure is variant-specific, or the node ran out of time
    while its agent was working on it. Not when the release itself is broken (every variant
    would fail) or the agent never answered (a node without an agent runs no variant)."""
    if reported is None:
        return False
    return reported.phase != "Failed" or reasons.failure_scope(_error(reported)) == "variant"


def _error(reported: ModelStatus | None) -> str:
    if reported is None or reported.last_error is None:
        return "progress deadline exceeded"
    return reported.last_error.reason
