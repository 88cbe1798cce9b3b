"""Analysis between steps: the condition grammar, measurement accounting, the verdict, and the
planner holding at a step until its analysis passed (or aborting when it failed)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.api.analysis import (
    CONDITION,
    MEASUREMENTS_KEPT,
    AnalysisRun,
    Measurement,
    Metric,
    MetricResult,
)
from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.core import analysis, planning, thresholds
from edge_rollout.core.analysis import Reading
from tests.unit.core.fixtures import T0, Fleet, fleet, spec

# --- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        pytest.param("result < 0.05", 0.01, True, id="below"),
        pytest.param("result < 0.05", 0.05, False, id="at-the-limit"),
        pytest.param("result[0] >= 0.95", 0.95, True, id="argo-index"),
        pytest.param("result>=1e-3", 0.002, True, id="exponent-no-spaces"),
        pytest.param("result == -1", -1.0, True, id="negative"),
        pytest.param("result != 0", 0.0, False, id="not-equal"),
        pytest.param("result > 0.9 && result <= 1", 1.0, True, id="and"),
        pytest.param("result > 0.9 && result <= 1", 1.5, False, id="and-false"),
        pytest.param("result < 0 || result > 10 && result < 20", 15.0, True, id="and-first"),
        pytest.param("result < 0.05", math.inf, False, id="inf"),
        pytest.param("result > 0.05", math.nan, False, id="nan-fails-comparisons"),
    ],
)
def test_conditions_compare_result_with_a_number(text: str, value: float, expected: bool) -> None:
    assert thresholds.holds(thresholds.parse(text), value) is expected
    assert CONDITION.matches(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("0.05 > result", id="number-first"),
        pytest.param("result < 0.05 and result > 0", id="words"),
        pytest.param("(result < 0.05)", id="parentheses"),
        pytest.param("__import__('os').system('x')", id="code"),
        pytest.param("result[1] < 2", id="other-index"),
        pytest.param("result < ", id="no-number"),
        pytest.param("result < 1 &&", id="dangling"),
        pytest.param("results < 1", id="other-name"),
    ],
)
def test_anything_else_is_refused_by_parser_and_crd_alike(text: str) -> None:
    with pytest.raises(thresholds.ConditionError, match="result <op> number"):
        thresholds.parse(text)
    assert not CONDITION.matches(text)


OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}  # fmt: skip
numbers = st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda x: round(x, 3))
comparisons = st.tuples(st.sampled_from(sorted(OPS)), numbers, st.sampled_from(["", "[0]"]))
conditions = st.lists(st.lists(comparisons, min_size=1, max_size=3), min_size=1, max_size=3)


def _text(condition: list[list[tuple[str, float, str]]]) -> str:
    return " || ".join(
        " && ".join(f"result{index} {op} {number!r}" for op, number, index in conjunction)
        for conjunction in condition
    )


@settings(max_examples=300, deadline=None)
@given(conditions, st.floats(allow_nan=True, width=32))
def test_a_parsed_condition_means_what_it_says(
    condition: list[list[tuple[str, float, str]]], value: float
) -> None:
    """Or of ands, each comparison as Python compares floats; the CRD admits the text."""
    text = _text(condition)
    expected = any(all(OPS[op](value, n) for op, n, _ in conj) for conj in condition)
    assert thresholds.holds(thresholds.parse(text), value) is expected
    assert CONDITION.matches(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="result[0]<>=!&| .-e1234567890x()", max_size=40))
def test_the_crd_rule_and_the_parser_accept_the_same_texts(text: str) -> None:
    try:
        thresholds.parse(text)
        parsed = True
    except thresholds.ConditionError:
        parsed = False
    assert parsed == (CONDITION.matches(text) and text != "")


# --- one measurement, one metric --------------------------------------------------------------


def metric(**fields: object) -> Metric:
    return Metric.model_validate({"name": "errors", "query": "q", **fields})


@pytest.mark.parametrize(
    ("conditions", "value", "phase"),
    [
        pytest.param({"successCondition": "result >= 0.9"}, "0.95", "Successful", id="success"),
        pytest.param({"successCondition": "result >= 0.9"}, "0.5", "Failed", id="success-false"),
        pytest.param({"failureCondition": "result > 0.05"}, "0.5", "Failed", id="failure-true"),
        pytest.param({"failureCondition": "result > 0.05"}, "0.01", "Successful", id="fail-false"),
        pytest.param({"successCondition": "result < 0.01", "failureCondition": "result > 0.1"},
                     "0.05", "Inconclusive", id="both-false-argo"),
        pytest.param({"successCondition": "result < 1", "failureCondition": "result > 0.1"},
                     "0.5", "Failed", id="failure-wins"),
        pytest.param({"failureCondition": "result > 0.05"}, "NaN", "Inconclusive", id="nan"),
        pytest.param({"failureCondition": "result > 0.05"}, "", "Inconclusive", id="no-value"),
        pytest.param({"failureCondition": "result > 0.05"}, "+Inf", "Failed", id="inf"),
    ],
)  # fmt: skip
def test_a_measurement_is_judged_as_argo_rollouts_does(
    conditions: dict[str, str], value: str, phase: str
) -> None:
    judged = analysis.judge(metric(**conditions), Reading(0, "errors", T0, value=value))
    assert judged.phase == phase
    assert judged.value == value


def test_an_unreachable_prometheus_is_inconclusive_with_its_message() -> None:
    reading = Reading(0, "errors", T0, error="Prometheus at http://p:9090 is unreachable")
    judged = analysis.judge(metric(failureCondition="result > 1"), reading)
    assert (judged.phase, judged.message) == ("Inconclusive", reading.error)


phases = st.sampled_from(["Successful", "Failed", "Inconclusive"])


@settings(max_examples=300, deadline=None)
@given(st.lists(phases, max_size=30), st.integers(1, 12), st.integers(0, 11))
def test_accounting_counts_every_measurement_and_decides_at_the_limit(
    seen: list[str], count: int, limit: int
) -> None:
    """Counts add up, the latest MEASUREMENTS_KEPT are kept, and the phase is Failed exactly
    when failed + inconclusive passed failureLimit, Successful once count were taken."""
    m = metric(count=count, failureLimit=min(limit, count - 1), failureCondition="result > 1")
    result = MetricResult(name="errors")
    for phase in seen:
        result = analysis.record(result, m, Measurement(phase=phase))  # type: ignore[arg-type]
    assert result.count == len(seen) == result.successful + result.failed + result.inconclusive
    assert len(result.measurements) == min(len(seen), MEASUREMENTS_KEPT)
    bad = result.failed + result.inconclusive
    expected = "Failed" if bad > m.failure_limit else "Running"
    if expected == "Running" and len(seen) >= m.count:
        expected = "Successful"
    assert result.phase == expected


def test_a_run_folds_only_running_metrics_and_names_the_values_that_decided() -> None:
    spec_ = spec(analysis=ANALYSIS)
    assert spec_.strategy.analysis is not None
    run = AnalysisRun(step=0, version="2.0")
    readings = [Reading(0, "errors", T0, value="0.5"), Reading(0, "success", T0, value="0.99")]
    run = analysis.fold(run, spec_.strategy.analysis, readings)
    assert run.phase == "Failed"
    assert "metric errors: 1 of 1 measurements failed" in run.message
    assert "values [0.5]" in run.message
    assert "failureCondition result > 0.05 is true" in run.message
    again = analysis.fold(run, spec_.strategy.analysis, readings)
    assert again == run  # a decided run takes no more measurements


# --- the planner at step boundaries -----------------------------------------------------------

ANALYSIS = {
    "prometheus": {"address": "http://127.0.0.1:9090"},
    "metrics": [
        {"name": "errors", "query": "errors", "failureCondition": "result > 0.05"},
        {"name": "success", "query": "success", "successCondition": "result >= 0.95",
         "count": 3, "interval": "20s", "failureLimit": 1},
    ],
}  # fmt: skip
STEPS = [{"setNodeCount": 1}, {"setNodePercent": 100}]


def rollout(values: dict[str, str], ticks: int = 120, **strategy: object) -> Fleet:
    """A fleet of 4 nodes on 1.0 moving to 2.0 with steps [1 node, all] and ANALYSIS, the
    queries answered from `values` (as a Prometheus would), planning every 5 s."""
    f = fleet(4)
    f.spec = spec("1.0")
    f.apply(f.plan())
    f.run()
    f.spec = spec("2.0", **{"steps": STEPS, "analysis": ANALYSIS, **strategy})
    f.generation += 1
    for _ in range(ticks):
        tick(f, values)
        if f.status.phase in ("Ready", "RolledBack", "Failed"):
            break
    return f


def tick(f: Fleet, values: dict[str, str]) -> None:
    f.now += timedelta(seconds=5)
    for node in f.nodes:
        node.agent_step(f.now, timedelta(seconds=15))
    run = analysis.running(f.status)
    due = analysis.due(f.spec, f.status, f.now) if run else []
    readings = [Reading(run.step, m.name, f.now, value=values[m.query]) for m in due if run]
    deployment = planning.Deployment("ns/md", f.generation, f.spec, f.status)
    nodes = [n.as_input() for n in f.nodes]
    f.apply(planning.plan_rollout(deployment, f.releases, nodes, f.now, readings))


def test_steps_advance_once_the_analysis_passed() -> None:
    f = rollout({"errors": "0.01", "success": "0.99"})
    assert f.status.phase == "Ready"
    runs = f.status.analysis_runs
    assert [(r.step, r.phase) for r in runs] == [(0, "Successful"), (1, "Successful")]
    success = runs[0].metric_results[1]
    assert (success.count, success.successful) == (3, 3)
    times = [m.finished_at for m in success.measurements]
    assert times == sorted(times)
    assert len(set(times)) == 3  # one every interval, not at once
    reasons = [e.reason for e in f.events]
    assert reasons.index("AnalysisSuccessful") < reasons.index("StepCompleted")
    assert "every metric passed: errors [0.01], success [0.99, 0.99, 0.99]" in runs[0].message


def test_the_rollout_holds_at_the_step_while_the_analysis_runs() -> None:
    f = rollout({"errors": "0.01", "success": "0.99"}, ticks=9)
    assert f.status.current_step_index == 0
    assert sum(1 for n in f.nodes if n.desired and n.desired.version == "2.0") == 1
    assert f.status.phase == "Progressing"
    assert (
        "step 0/2 (setNodeCount 1); analysis running: errors 1/1, success 1/3 measurements taken"
        in (f.status.message)
    )


def test_a_failed_analysis_aborts_and_rolls_back_with_the_values_in_status_and_events() -> None:
    f = rollout({"errors": "0.42", "success": "0.99"})
    assert f.status.phase == "RolledBack"
    assert f.status.abort_reason.startswith("analysis after step 0 (setNodeCount 1) failed:")
    assert "values [0.42]" in f.status.abort_reason
    assert f.status.analysis_runs[0].phase == "Failed"
    assert f.status.analysis_runs[0].metric_results[0].measurements[0].value == "0.42"
    failed = [e for e in f.events if e.reason == "AnalysisFailed"]
    assert len(failed) == 1
    assert "0.42" in failed[0].message
    assert any(e.reason == "RolloutAborted" and "0.42" in e.message for e in f.events)
    assert all(n.desired is not None and n.desired.version == "1.0" for n in f.nodes)
    assert f.status.counts.failed == 0  # no node failed: the metrics did


def test_inconclusive_answers_count_against_failure_limit() -> None:
    f = rollout({"errors": "0.01", "success": "NaN"})
    assert f.status.phase == "RolledBack"
    result = f.status.analysis_runs[0].metric_results[1]
    assert (result.inconclusive, result.phase) == (2, "Failed")  # failureLimit 1


def test_a_new_version_starts_with_no_runs_and_a_pause_needs_none() -> None:
    f = rollout({"errors": "0.01", "success": "0.99"}, steps=[{"pause": {"duration": "10s"}}])
    assert f.status.phase == "Ready"
    assert [r.step for r in f.status.analysis_runs] == []
    f.spec = spec("3.0", steps=STEPS, analysis=ANALYSIS)
    f.generation += 1
    tick(f, {"errors": "0.01", "success": "0.99"})
    assert all(r.version == "3.0" for r in f.status.analysis_runs)


def test_measurements_are_due_every_interval() -> None:
    f = rollout({"errors": "0.01", "success": "0.99"}, ticks=8)
    run = analysis.running(f.status)
    assert run is not None
    last = run.metric_results[1].measurements[-1].finished_at
    names = [m.name for m in analysis.due(f.spec, f.status, f.now)]
    assert "errors" not in names  # count 1, done
    later = f.now + timedelta(seconds=20)
    assert [m.name for m in analysis.due(f.spec, f.status, later)] == ["success"], last
    paused = f.spec.model_copy(update={"paused": True})
    assert analysis.due(paused, f.status, later) == []


def test_no_analysis_starts_while_no_node_runs_the_target() -> None:
    """A step whose only node has no agent is finished for the steps, not for the analysis."""
    f = fleet(1)
    f.nodes[0].hardware = f.nodes[0].hardware.model_copy(update={"memory_bytes": 0})
    f.spec = spec("2.0", steps=[{"setNodeCount": 1}], analysis=ANALYSIS)
    for _ in range(5):
        tick(f, {"errors": "0.5", "success": "0.1"})
    assert f.status.analysis_runs == []
    assert f.status.current_step_index == 0
    assert "analysis starts once a node runs 2.0" in f.status.message


answers = st.sampled_from(["0.01", "0.5", "0.99", "NaN", ""])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(answers, answers), min_size=30, max_size=30))
def test_planning_again_without_readings_changes_nothing(answered: list[tuple[str, str]]) -> None:
    """Whatever the queries answer, tick by tick: a plan from the last status with no new
    readings (a second replan at the same moment) writes the same status and no events, so
    measurements are neither lost nor counted twice."""
    f = fleet(4)
    f.spec = spec("1.0")
    f.apply(f.plan())
    f.run()
    f.spec = spec("2.0", steps=STEPS, analysis=ANALYSIS)
    f.generation += 1
    for errors, success in answered:
        tick(f, {"errors": errors, "success": success})
        deployment = planning.Deployment("ns/md", f.generation, f.spec, f.status)
        again = planning.plan_rollout(
            deployment, f.releases, [n.as_input() for n in f.nodes], f.now
        )
        assert again.status == f.status
        assert not [e for e in again.events if e.reason.startswith("Analysis")]


def test_the_longest_verdict_fits_the_status_it_is_written_to() -> None:
    """Three failing metrics with the longest queries and values: abortReason, the run's
    message and every measurement stay within the CRD's maxLength (or the apiserver would
    refuse the status)."""
    longest = {
        "prometheus": {"address": "http://127.0.0.1:9090"},
        "metrics": [
            {"name": f"m{i}-" + "x" * 59, "query": "q" * 768, "failureCondition": "result > 0"}
            for i in range(3)
        ],
    }
    f = rollout({"q" * 768: "9" * 100}, analysis=longest)
    assert f.status.phase == "RolledBack"
    ModelDeploymentStatus.model_validate(f.status.model_dump(by_alias=True))
    assert len(f.status.abort_reason) <= 1024


def test_removing_the_analysis_lets_the_held_rollout_go_on() -> None:
    f = rollout({"errors": "0.01", "success": "0.99"}, ticks=9)
    assert f.status.current_step_index == 0
    assert analysis.running(f.status) is not None
    f.spec = spec("2.0", steps=STEPS)
    f.generation += 1
    f.run()
    assert (f.status.phase, f.status.current_step_index) == ("Ready", 2)
