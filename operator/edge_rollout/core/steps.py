"""Rollout steps: how many nodes the current step wants on the new version, and when it is done.

Pure. Steps use Argo Rollouts' vocabulary adapted to nodes: `setNodePercent`, `setNodeCount`,
`pause` (a duration, or until approved in spec). Progress is (step index, when it started).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from edge_rollout.api.common import parse_duration
from edge_rollout.api.modeldeployment import Step, Strategy
from edge_rollout.core.values import StepProgress as StepProgress


def step_goal(step: Step, total: int) -> int | None:
    """Nodes a setNode step wants on the new version; None for a pause.

    >>> step_goal(Step(set_node_percent=25), 10)
    3
    """
    if step.set_node_percent is not None:
        return min(total, math.ceil(step.set_node_percent * total / 100))
    if step.set_node_count is not None:
        return min(total, step.set_node_count)
    return None


def goal_at(strategy: Strategy, index: int, total: int) -> int:
    """Nodes wanted on the new version while step `index` is in progress (all, after the last)."""
    if index >= len(strategy.steps):
        return total
    goals = [step_goal(s, total) for s in strategy.steps[: index + 1]]
    return max([g for g in goals if g is not None], default=0)


def pause_passed(
    strategy: Strategy, index: int, started: datetime, version: str, now: datetime
) -> bool:
    """A pause is passed when its duration has elapsed or spec approves it for this version."""
    approved = strategy.approved
    if approved is not None and approved.version == version and approved.through_step >= index:
        return True
    pause = strategy.steps[index].pause
    if pause is None or pause.duration is None:
        return False
    return now >= started + timedelta(seconds=parse_duration(pause.duration))


def advance(
    strategy: Strategy,
    progress: StepProgress,
    *,
    finished: int,
    total: int,
    version: str,
    now: datetime,
) -> StepProgress:
    """Move past every step that is complete now; stop at the first that is not.

    A setNode step is complete when `finished` (nodes Ready on the new version for
    minReadySeconds, or failed with nothing left to try) reaches its goal.

    Worked example: steps [setNodeCount 1, pause 10m, setNodePercent 100] with one node finished
    at index 0 move to index 1 (started now); ten minutes later to index 2; index 3 (= done) once
    every node has finished.
    """
    index, started = progress.index, progress.started
    while index < len(strategy.steps):
        step = strategy.steps[index]
        goal = step_goal(step, total)
        done = (
            (finished >= goal)
            if goal is not None
            else pause_passed(strategy, index, started, version, now)
        )
        if not done:
            break
        index, started = index + 1, now
    return StepProgress(index, started)


def describe(step: Step) -> str:
    """`setNodePercent 25`, `pause 10m`, `pause until approved`."""
    label = f"{step.name}: " if step.name else ""
    if step.set_node_percent is not None:
        return f"{label}setNodePercent {step.set_node_percent}"
    if step.set_node_count is not None:
        return f"{label}setNodeCount {step.set_node_count}"
    duration = step.pause.duration if step.pause else None
    return f"{label}pause {duration}" if duration else f"{label}pause until approved"


def max_unavailable(strategy: Strategy, total: int) -> int:
    """maxUnavailable as a node count; a percentage rounds down but never below 1.

    >>> max_unavailable(Strategy(max_unavailable="25%"), 10)
    2
    """
    value = strategy.max_unavailable
    if isinstance(value, int):
        return max(1, value)
    return max(1, total * int(value.rstrip("%")) // 100)
