"""The outcomes of a deployment's selected nodes, reusing those of its last plan.

Pure. Between two plans of a deployment most selected nodes are the same NodeInput objects and
stand where they stood (`outcomes.lasts`): their outcomes, and their tally, are taken from the
last plan (the `Judgement` the caller keeps in its `caching.PlannerCache` and hands back). Only
the others (new objects, nodes in flight or failed) are worked out again, in order, so the
outcomes and events are those a plan with no cache gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import compress
from operator import attrgetter, is_not

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.release import Release
from edge_rollout.core import fleet
from edge_rollout.core.outcomes import NodePlanner, lasts, ready_since
from edge_rollout.core.values import Choice, NodeInput, NodeOutcome, Selection

Entries = dict[str, DesiredModel | None]
Choices = dict[str, Choice]


@dataclass(frozen=True)
class Judged:
    """Every selected node's outcome (before anyone new is asked), in order, and their tally;
    their entries and choices by node name (shared with the memo: copy before changing)."""

    outcomes: tuple[NodeOutcome, ...]
    tally: fleet.Tally
    desired: Entries
    choices: Choices


def judge(
    planner: NodePlanner, chosen: Selection, last: Judgement | None = None
) -> tuple[Judged, Judgement]:
    """The outcome of each of `chosen.nodes`, given the `Judgement` this returned at the
    deployment's last plan (None: all worked out again; same result), and the `Judgement` to
    hand back at the next.

    Worked example: 3,000 selected nodes of which 150 are downloading: the first plan works out
    all 3,000; the next, given the same NodeInputs, the 150 (and any node whose objects changed).
    """
    nodes = chosen.nodes
    if last is not None and chosen.unique and last.fits(planner, nodes):
        found = last.update(planner, nodes)
    else:
        found = _fresh(planner, nodes)
    redone = map(found.outcomes.__getitem__, found.redo)
    judged = Judged(found.outcomes, found.lasting.plus(redone), found.desired, found.choices)
    return judged, found


def entries(outcomes: Sequence[NodeOutcome]) -> Entries:
    """Each outcome's entry by node name."""
    return dict(zip(map(_NODE, outcomes), map(_DESIRED, outcomes), strict=True))


def choices(outcomes: Sequence[NodeOutcome]) -> Choices:
    """Each outcome's choice (when it has one) by node name."""
    found = list(map(_CHOICE, outcomes))
    if all(found):
        return dict(zip(map(_NODE, outcomes), found, strict=True))
    return {o.node: o.choice for o in outcomes if o.choice}


def patched(
    outcomes: Sequence[NodeOutcome],
    was: Sequence[NodeOutcome],
    desired: Entries,
    chosen: Choices,
    changed: Iterable[int],
) -> tuple[Entries, Choices]:
    """New `desired` and `chosen` (of the outcomes `was`) for `outcomes`, which differ at the
    `changed` positions only. Equal to `entries(outcomes), choices(outcomes)` when the names
    are unique: a node at the same position keeps its key's place."""
    desired, chosen = dict(desired), dict(chosen)
    for i in changed:
        outcome = outcomes[i]
        if outcome.node != was[i].node or not outcome.choice:
            return entries(outcomes), choices(outcomes)
        desired[outcome.node] = outcome.desired
        chosen[outcome.node] = outcome.choice
    return desired, chosen


@dataclass(frozen=True)
class _Kept:
    """What a plan hands on to the next: the lasting outcomes counted, the latest readySince of
    a lasting `updated` outcome (or later), every outcome's entry and choice."""

    lasting: fleet.Tally
    since: datetime | None
    desired: Entries
    choices: Choices


@dataclass(frozen=True)
class Judgement(_Kept):
    """One deployment's outcomes, and what is needed to know which still hold."""

    key: tuple[object, ...]
    """`NodePlanner.outcome_key`: the target version, selection policy and policy fields."""
    target: Release
    nodes: tuple[NodeInput, ...]
    outcomes: tuple[NodeOutcome, ...]
    redo: tuple[int, ...]
    """Positions whose outcome does not last: worked out again at every plan."""

    def fits(self, planner: NodePlanner, nodes: Sequence[NodeInput]) -> bool:
        """The lasting outcomes hold for `planner` wherever `nodes` are the same objects."""
        return (
            self.key == planner.outcome_key
            and self.target is planner.target
            and len(self.nodes) == len(nodes)
            and (self.since is None or self.since <= planner.ready_before)
        )

    def update(self, planner: NodePlanner, nodes: tuple[NodeInput, ...]) -> Judgement:
        """Work out again the outcomes that do not last and those of nodes that changed."""
        changed: list[int] = []
        if nodes is not self.nodes:
            changed = list(compress(range(len(nodes)), map(is_not, nodes, self.nodes)))
        redo = set(self.redo)
        gone = [self.outcomes[i] for i in changed if i not in redo]
        again = sorted(redo.union(changed))
        outcomes = list(self.outcomes)
        for i in again:
            outcomes[i] = planner.outcome(nodes[i])
        lasting = self.lasting.minus(gone) if gone else self.lasting
        desired, chosen = patched(outcomes, self.outcomes, self.desired, self.choices, again)
        kept = _Kept(lasting, self.since, desired, chosen)
        return _settle(planner, nodes, tuple(outcomes), again, kept)


def _fresh(planner: NodePlanner, nodes: tuple[NodeInput, ...]) -> Judgement:
    outcomes = tuple(map(planner.outcome, nodes))
    empty = fleet.tally((), planner.rollout.target)
    kept = _Kept(empty, None, entries(outcomes), choices(outcomes))
    return _settle(planner, nodes, outcomes, range(len(nodes)), kept)


def _settle(
    planner: NodePlanner,
    nodes: tuple[NodeInput, ...],
    outcomes: tuple[NodeOutcome, ...],
    worked_out: Iterable[int],
    kept: _Kept,
) -> Judgement:
    """Sort the positions just `worked_out` into lasting ones (counted) and ones to redo."""
    since = kept.since
    redo = []
    lasting = []
    for i in worked_out:
        node, outcome = nodes[i], outcomes[i]
        if not lasts(node, outcome):
            redo.append(i)
            continue
        lasting.append(outcome)
        ready = ready_since(node) if outcome.state == "updated" else None
        if ready is not None and (since is None or ready > since):
            since = ready
    return Judgement(
        kept.lasting.plus(lasting),
        since,
        kept.desired,
        kept.choices,
        planner.outcome_key,
        planner.target,
        nodes,
        outcomes,
        tuple(redo),
    )


_NODE = attrgetter("node")
_DESIRED = attrgetter("desired")
_CHOICE = attrgetter("choice")
