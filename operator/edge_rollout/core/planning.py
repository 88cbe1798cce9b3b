"""Rollout planning: from the spec, the releases and what the nodes report, decide what each
node should run now and what the ModelDeployment status says.

Pure and deterministic: everything comes in as arguments (including `now`); the result is a
`Plan` with the desired EdgeNode entries, the next status and the events. Progress lives in the
status and the EdgeNode entries, so planning again from `plan.status` with the same nodes changes
nothing, and a restarted operator continues at the same step. The caller's `caching.PlannerCache`
(optional) only saves work: the plan is the one planning without it gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import compress, count
from operator import is_not

from edge_rollout.api.release import Release
from edge_rollout.core import abort as abort_rules
from edge_rollout.core import analysis as analyses
from edge_rollout.core import caching, fleet, ordering, replanning, reports, specchecks, steps
from edge_rollout.core import summary as summaries
from edge_rollout.core.outcomes import NodePlanner, parse
from edge_rollout.core.values import Deployment, Event, NodeInput, NodeOutcome, Plan, Rollout

__all__ = ["Deployment", "Event", "NodeInput", "Plan", "plan_rollout"]


def plan_rollout(
    deployment: Deployment,
    releases: Mapping[str, Release],
    nodes: Sequence[NodeInput],
    now: datetime,
    readings: Sequence[analyses.Reading] = (),
    cache: caching.PlannerCache | None = None,
    heard: reports.Heard | None = None,
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

    `readings` are the query answers of the analysis the rollout waits for (`analysis.due`).
    With `cache` (the same one across plans), the work of the deployment's last plan is reused
    where its inputs are the same objects; the plan is the same as without it. With `heard`
    (when each agent last reported), nodes whose agent went silent are held as NoAgent.
    """
    memo = cache.deployment(deployment.key) if cache is not None else caching.DeploymentMemo()
    rollout = _rollout_state(deployment, now)
    memo.ordered = ordering.select_nodes(deployment.spec, nodes, memo.ordered, memo.nodes)
    chosen, held = reports.hold_invalid(memo.ordered.selection)
    chosen, silent = reports.hold_silent(chosen, heard, now)
    held = (*held, *silent)
    target = releases[rollout.target]
    stable = releases.get(rollout.stable)
    planner = NodePlanner(deployment, rollout, target, stable, now, memo.nodes)
    judged, judgement = replanning.judge(planner, chosen, memo.judged)
    memo.judged = judgement if chosen.unique else None
    if len(memo.nodes) > 2 * len(nodes) + 1024:
        memo.nodes.keep(n.name for n in nodes)
    rollout, gated = _progress(planner, rollout, judged.tally.plus(held), readings)
    outcomes, tally = _ask(planner, rollout, chosen.nodes, judged)
    changed = () if outcomes is judged.outcomes else _changed(outcomes, judged.outcomes)
    desired, choices = replanning.patched(
        outcomes, judged.outcomes, judged.desired, judged.choices, changed
    )
    desired.update(dict.fromkeys(chosen.removed))
    desired.update((o.node, o.desired) for o in held)
    choices.update((o.node, o.choice) for o in held if o.choice is not None)  # why not asked
    evidence = (*judged.tally.bad, *held)
    status, events = summaries.summarize(
        deployment,
        rollout,
        tally.plus(held),
        evidence,
        now,
        stable_release=stable is not None,
        waiting=gated.waiting,
    )
    status = status.model_copy(update={"analysis_runs": list(gated.runs)})
    status, warned = specchecks.with_warnings(deployment, chosen.nodes, status, now)
    return Plan(desired, status, (*planner.events, *events, *warned), choices)


def _changed(outcomes: Sequence[NodeOutcome], was: Sequence[NodeOutcome]) -> Iterable[int]:
    return compress(count(), map(is_not, outcomes, was))


def _rollout_state(deployment: Deployment, now: datetime) -> Rollout:
    previous = deployment.status
    target = deployment.spec.model.version
    if previous.target_version == target:
        started = parse(previous.step_started_at) or now
        verdict = previous.abort_reason or None
        return Rollout(
            previous.stable_version,
            target,
            steps.StepProgress(previous.current_step_index, started),
            verdict,
        )
    completed = previous.target_version and previous.target_version == previous.stable_version
    stable = previous.target_version if completed else previous.stable_version
    # Going back to the stable version (a revert in Git) is no new rollout: no steps, no pauses.
    first = len(deployment.spec.strategy.steps) if target == stable else 0
    return Rollout(stable, target, steps.StepProgress(first, now), None)


FINISHED = ("updated", "failed", "unschedulable")
"""A node has finished with the target when it is Ready long enough, or nothing more can be tried.
Failures below the abort threshold do not hold a step back: abort criteria decide."""


def _progress(
    planner: NodePlanner,
    rollout: Rollout,
    tally: fleet.Tally,
    readings: Sequence[analyses.Reading],
) -> tuple[Rollout, analyses.Gated]:
    """Abort if the criteria say so; otherwise move past the steps that are complete (and whose
    analysis passed: a failed one aborts)."""
    runs = planner.deployment.status.analysis_runs
    kept = analyses.Gated(rollout.progress, tuple(r for r in runs if r.version == rollout.target))
    if rollout.aborted:
        return rollout, kept
    spec = planner.spec
    states = tally.states
    failures = [abort_rules.failure_type(o) for o in tally.bad if o.state == "failed"]
    finished = states["updated"] + states["failed"]
    verdict = abort_rules.evaluate_counts(spec.abort, finished, failures, states["updating"])
    if verdict is not None:
        planner.events.append(Event("Warning", "RolloutAborted", verdict))
        return Rollout(rollout.stable, rollout.target, rollout.progress, verdict), kept
    if spec.paused:
        return rollout, kept
    total = tally.total
    gated = analyses.advance(
        spec.strategy,
        rollout.progress,
        finished=sum(states[state] for state in FINISHED),
        total=total,
        version=rollout.target,
        now=planner.now,
        runs=kept.runs,
        readings=readings,
        updated=states["updated"],
    )
    moved = gated.progress
    planner.events.extend(gated.events)
    for index in range(rollout.progress.index, moved.index):
        planner.events.append(
            Event(
                "Normal",
                "StepCompleted",
                f"step {index} ({steps.describe(spec.strategy.steps[index])})"
                f" complete: {states['updated']}/{total} nodes on {rollout.target}",
            )
        )
    if gated.verdict is not None:
        planner.events.append(Event("Warning", "RolloutAborted", gated.verdict))
    return Rollout(rollout.stable, rollout.target, moved, gated.verdict), gated


def _ask(
    planner: NodePlanner,
    rollout: Rollout,
    nodes: Sequence[NodeInput],
    judged: replanning.Judged,
) -> tuple[Sequence[NodeOutcome], fleet.Tally]:
    """Ask the next nodes in order to move to the target, within goal and maxUnavailable; the
    outcomes after that, and their tally."""
    outcomes, tally = judged.outcomes, judged.tally
    if rollout.aborted:
        after = _after_abort(planner, nodes, outcomes)
        return after, tally if after is outcomes else fleet.tally(after, rollout.target)
    spec = planner.spec
    if spec.paused:
        return outcomes, tally
    states, total = tally.states, tally.total
    room = min(
        steps.goal_at(spec.strategy, rollout.progress.index, total)
        - (states["updated"] + states["updating"] + states["failed"]),
        steps.max_unavailable(spec.strategy, total) - states["updating"],
    )
    if room <= 0:
        return outcomes, tally
    by_name = {n.name: n for n in nodes}
    result = list(outcomes)
    asked = []
    for i, outcome in enumerate(outcomes):
        if room > 0 and outcome.state == "old" and outcome.choice is not None:
            result[i] = planner.entry(by_name[outcome.node], outcome.choice, ())
            asked.append(i)
            room -= 1
    before, after = [outcomes[i] for i in asked], [result[i] for i in asked]
    return result, tally.minus(before).plus(after)


def _after_abort(
    planner: NodePlanner, nodes: Sequence[NodeInput], outcomes: Sequence[NodeOutcome]
) -> Sequence[NodeOutcome]:
    if planner.spec.abort.failure_handling_policy != "Rollback" or planner.stable is None:
        return outcomes
    by_name = {n.name: n for n in nodes}
    return [o if o.state == "old" else planner.rolled_back(by_name[o.node], o) for o in outcomes]
