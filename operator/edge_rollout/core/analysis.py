"""Analysis at step boundaries (Argo Rollouts' AnalysisRun): judge query results, count them,
and hold the rollout at a step until its analysis passed, or abort it when it failed.

Pure: the controller takes the measurements that `due` names (controller/prometheus) and hands
them in as `Reading`s with the time they were taken; nothing here does I/O or reads the clock.
A measurement is Successful, Failed or Inconclusive (no answer, no data, NaN, both conditions
false); more failed plus inconclusive ones than failureLimit fail the metric and the analysis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge_rollout.api.analysis import (
    MEASUREMENTS_KEPT,
    RUNS_KEPT,
    Analysis,
    AnalysisRun,
    Measurement,
    MeasurementPhase,
    Metric,
    MetricResult,
    RunPhase,
)
from edge_rollout.api.common import parse_duration
from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus, Strategy
from edge_rollout.core import steps, thresholds
from edge_rollout.core.conditions import rfc3339
from edge_rollout.core.fleet import Event


@dataclass(frozen=True)
class Reading:
    """One query answer for metric `metric` of the analysis at step `step`: the value as
    Prometheus wrote it, or why there is none."""

    step: int
    metric: str
    at: datetime
    value: str = ""
    error: str = ""


@dataclass(frozen=True)
class Gated:
    """Where the steps stand once analyses had their say."""

    progress: steps.StepProgress
    runs: tuple[AnalysisRun, ...]
    verdict: str | None = None
    """Why the rollout must abort (a failed analysis); None otherwise."""
    events: tuple[Event, ...] = ()
    waiting: str = ""
    """What the rollout waits for while an analysis runs ("" when none does)."""


def judge(metric: Metric, reading: Reading) -> Measurement:
    """One measurement of `metric` from `reading` (Argo Rollouts' rules).

    >>> m = Metric(name="errors", query="q", failure_condition="result > 0.05")
    >>> judge(m, Reading(0, "errors", datetime(2026, 1, 1), value="0.2")).phase
    'Failed'
    """
    at = rfc3339(reading.at)
    if reading.error or not thresholds.is_number(reading.value):
        why = reading.error or f"the query returned {reading.value or 'nothing'}, not a number"
        return Measurement(
            phase="Inconclusive", value=reading.value[:64], message=why[:512], finished_at=at
        )
    value = float(reading.value)
    success, failure = metric.success_condition, metric.failure_condition
    phase: MeasurementPhase
    if failure and thresholds.holds(thresholds.parse(failure), value):
        phase, why = "Failed", f"failureCondition {failure} is true"
    elif not success:
        phase, why = "Successful", f"failureCondition {failure} is false"
    elif thresholds.holds(thresholds.parse(success), value):
        phase, why = "Successful", f"successCondition {success} is true"
    elif failure:
        phase, why = "Inconclusive", "neither successCondition nor failureCondition is true"
    else:
        phase, why = "Failed", f"successCondition {success} is false"
    return Measurement(phase=phase, value=reading.value[:64], message=why, finished_at=at)


def record(result: MetricResult, metric: Metric, measurement: Measurement) -> MetricResult:
    """`result` with one more measurement counted, the latest MEASUREMENTS_KEPT kept.

    >>> m = Metric(name="e", query="q", count=2, failure_condition="result > 1")
    >>> r = record(MetricResult(name="e"), m, Measurement(phase="Successful"))
    >>> r.phase, record(r, m, Measurement(phase="Inconclusive")).phase
    ('Running', 'Failed')
    """
    field = {"Successful": "successful", "Failed": "failed", "Inconclusive": "inconclusive"}
    counted = result.model_copy(
        update={
            "count": result.count + 1,
            field[measurement.phase]: getattr(result, field[measurement.phase]) + 1,
            "measurements": [*result.measurements, measurement][-MEASUREMENTS_KEPT:],
        }
    )
    return counted.model_copy(update={"phase": metric_phase(counted, metric)})


def metric_phase(result: MetricResult, metric: Metric) -> RunPhase:
    """Failed past failureLimit, Successful once count measurements are in, else Running."""
    if result.failed + result.inconclusive > metric.failure_limit:
        return "Failed"
    return "Successful" if result.count >= metric.count else "Running"


def fold(run: AnalysisRun, analysis: Analysis, readings: Iterable[Reading]) -> AnalysisRun:
    """`run` with `readings` counted (those of a metric that is still Running), its phase and
    message worked out again."""
    if run.phase != "Running":
        return run
    readings = list(readings)
    known = {r.name: r for r in run.metric_results}
    results = []
    for metric in analysis.metrics:
        result = known.get(metric.name) or MetricResult(name=metric.name)
        for reading in (r for r in readings if r.metric == metric.name):
            if result.phase == "Running":
                result = record(result, metric, judge(metric, reading))
        results.append(result)
    phase, message = verdict(results, analysis)
    return run.model_copy(
        update={"metric_results": results, "phase": phase, "message": message[:1024]}
    )


def verdict(results: Sequence[MetricResult], analysis: Analysis) -> tuple[RunPhase, str]:
    """The run's phase and what decided it, with the values."""
    metrics = {m.name: m for m in analysis.metrics}
    failed = [r for r in results if r.phase == "Failed"]
    if failed:
        return "Failed", "; ".join(_failure(r, metrics[r.name]) for r in failed)
    if all(r.phase == "Successful" for r in results):
        return "Successful", "every metric passed: " + ", ".join(map(_values, results))
    taken = ", ".join(f"{r.name} {r.count}/{metrics[r.name].count}" for r in results)
    return "Running", f"{taken} measurements taken"


def _values(result: MetricResult) -> str:
    shown = ", ".join(m.value or "-" for m in result.measurements)
    return f"{result.name} [{shown}]"


def _failure(result: MetricResult, metric: Metric) -> str:
    bad = result.failed + result.inconclusive
    latest = result.measurements[-1] if result.measurements else Measurement(phase="Inconclusive")
    return (
        f"metric {result.name}: {bad} of {result.count} measurements failed or inconclusive,"
        f" above failureLimit {metric.failure_limit}; values {_values(result).split(' ', 1)[1]};"
        f" latest: {latest.message} (query {metric.query[:200]})"
    )


def due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> list[Metric]:
    """The metrics to measure now: those of the Running analysis at the current step whose last
    measurement is at least `interval` old (or that have none yet).

    >>> due(ModelDeploymentSpec.model_validate({"model": {"name": "m", "version": "1",
    ...     "store": {"url": "file:///s"}}}), ModelDeploymentStatus(), datetime(2026, 1, 1))
    []
    """
    analysis = spec.strategy.analysis
    run = running(status)
    if analysis is None or run is None or spec.paused or spec.model.version != run.version:
        return []
    results = {r.name: r for r in run.metric_results}
    return [m for m in analysis.metrics if _due(results.get(m.name), m, now)]


def running(status: ModelDeploymentStatus) -> AnalysisRun | None:
    """The analysis the rollout waits for at its current step, if one is Running."""
    if status.abort_reason:
        return None
    return next(
        (
            r
            for r in status.analysis_runs
            if r.phase == "Running"
            and r.version == status.target_version
            and r.step == status.current_step_index
        ),
        None,
    )


def _due(result: MetricResult | None, metric: Metric, now: datetime) -> bool:
    if result is None:
        return True
    if result.phase != "Running" or not result.measurements:
        return result.phase == "Running"
    last = datetime.fromisoformat(result.measurements[-1].finished_at)
    return now >= last + timedelta(seconds=parse_duration(metric.interval))


def advance(
    strategy: Strategy,
    progress: steps.StepProgress,
    *,
    finished: int,
    total: int,
    version: str,
    now: datetime,
    runs: Sequence[AnalysisRun],
    readings: Sequence[Reading] = (),
    updated: int = 1,
) -> Gated:
    """`steps.advance`, holding at every setNode step until its analysis passed. An analysis
    starts only once `updated` (nodes Ready on the target) is above 0: a step whose nodes all
    finished without the new version (no agent, nothing fits) gives the queries nothing to see.

    Worked example: steps [setNodeCount 1, setNodePercent 100] and a metric with count 2,
    interval 30s: once the first node finished, the rollout holds at step 0 and the analysis
    starts (Running, no measurement); the controller measures it now and 30 s later; with both
    Successful the rollout moves to step 1; with more failed or inconclusive than failureLimit
    the verdict aborts the rollout.
    """
    kept = {r.step: r for r in runs if r.version == version}
    events: list[Event] = []
    while True:
        moved = steps.advance(
            strategy, progress, finished=finished, total=total, version=version, now=now
        )
        boundary = _boundary(strategy, progress.index, moved.index, kept)
        if boundary is None or strategy.analysis is None:
            return Gated(moved, _latest(kept), events=tuple(events))
        held = steps.StepProgress(boundary, progress.started if boundary == progress.index else now)
        if updated == 0 and boundary not in kept:
            waiting = f"analysis starts once a node runs {version}"
            return Gated(held, _latest(kept), events=tuple(events), waiting=waiting)
        before = kept.get(boundary) or AnalysisRun(
            step=boundary, version=version, started_at=rfc3339(now)
        )
        mine = (r for r in readings if r.step == boundary)
        run = kept[boundary] = fold(before, strategy.analysis, mine)
        gated = _decided(strategy, held, run, before, _latest(kept), events)
        if gated is not None:
            return gated
        progress = held


def _boundary(strategy: Strategy, start: int, end: int, runs: dict[int, AnalysisRun]) -> int | None:
    """The first setNode step in [start, end) whose analysis has not passed."""
    if strategy.analysis is None:
        return None
    for index in range(start, end):
        step = strategy.steps[index]
        if step.pause is None and not (index in runs and runs[index].phase == "Successful"):
            return index
    return None


def _decided(
    strategy: Strategy,
    held: steps.StepProgress,
    run: AnalysisRun,
    before: AnalysisRun,
    runs: tuple[AnalysisRun, ...],
    events: list[Event],
) -> Gated | None:
    """Gated at `held` while `run` is Running or Failed; None once it passed (move on)."""
    where = f"analysis after step {run.step} ({steps.describe(strategy.steps[run.step])})"
    changed = before.phase != run.phase
    if run.phase == "Running":
        return Gated(held, runs, events=tuple(events), waiting=f"analysis running: {run.message}")
    if run.phase == "Failed":
        verdict = f"{where} failed: {run.message}"[:1024]  # status.abortReason's maxLength
        if changed:
            events.append(Event("Warning", "AnalysisFailed", verdict))
        return Gated(held, runs, verdict, tuple(events))
    if changed:
        events.append(Event("Normal", "AnalysisSuccessful", f"{where}: {run.message}"))
    return None


def _latest(runs: dict[int, AnalysisRun]) -> tuple[AnalysisRun, ...]:
    return tuple(runs[step] for step in sorted(runs)[-RUNS_KEPT:])
