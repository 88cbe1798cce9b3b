"""Abort criteria (Greengrass abortConfig): stop a rollout when too many finished nodes fail.

Pure. A node has finished when it is Ready on the new version for minReadySeconds (succeeded) or
has failed terminally (Failed: load or test vectors; TimedOut: past the progress deadline;
NoAgent: its agent reports but never answered on the entry). A node whose agent stopped reporting
altogether is held before this (`reports.hold_silent`, unschedulable): it neither finishes nor
fails here, as a dead agent says nothing about the version. Without criteria the default rule
applies: stop once every finished node failed and none is still updating.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_rollout.api.modeldeployment import Abort, AbortCriterion
from edge_rollout.core.fleet import NodeOutcome


def failure_type(outcome: NodeOutcome) -> str:
    """`Failed` when the agent reported a failure of this version, `NoAgent` when no agent ever
    reported on it (criteria count it as `TimedOut`, the default rule not at all), else
    `TimedOut`."""
    reported = outcome.reported
    if reported is None:
        return "NoAgent"
    if (
        reported is not None
        and reported.phase == "Failed"
        and outcome.desired is not None
        and reported.version == outcome.desired.version
    ):
        return "Failed"
    return "TimedOut"


def evaluate(abort: Abort, outcomes: Sequence[NodeOutcome]) -> str | None:
    """Why the rollout must stop, or None. Fires exactly at the threshold (>=), and only once a
    criterion's minimum of finished nodes is reached and at least one of them failed.

    >>> from edge_rollout.api.modeldeployment import AbortCriterion
    >>> evaluate(Abort(criteria=[AbortCriterion(threshold_percentage=50)]), [])
    """
    finished = [o for o in outcomes if o.state in ("updated", "failed")]
    failures = [failure_type(o) for o in finished if o.state == "failed"]
    in_flight = sum(1 for o in outcomes if o.state == "updating")
    return evaluate_counts(abort, len(finished), failures, in_flight)


def evaluate_counts(
    abort: Abort, finished: int, failures: list[str], in_flight: int = 0
) -> str | None:
    """`evaluate` from the number of finished nodes, the failure type of each failed one and
    the number of nodes still updating.

    >>> evaluate_counts(Abort(criteria=[AbortCriterion(threshold_percentage=50)]), 2, ["Failed"])
    '1 of 2 finished nodes failed or timed out (50%), at or above the abort threshold of 50%'
    >>> evaluate_counts(Abort(), 2, ["Failed", "TimedOut"])
    'all 2 finished nodes failed (the default abort rule: spec.abort.criteria is empty)'
    >>> evaluate_counts(Abort(), 2, ["Failed", "TimedOut"], in_flight=1) is None
    True
    """
    if not abort.criteria:
        return _default(finished, failures, in_flight)
    failures = ["TimedOut" if f == "NoAgent" else f for f in failures]
    for criterion in abort.criteria:
        verdict = _check(criterion, finished, failures)
        if verdict:
            return verdict
    return None


def _check(criterion: AbortCriterion, finished: int, failures: list[str]) -> str | None:
    if finished < criterion.min_number_of_executed_nodes:
        return None
    kind = criterion.failure_type
    failed = len(failures) if kind == "All" else failures.count(kind)
    if failed == 0 or failed * 100 < criterion.threshold_percentage * finished:
        return None
    what = (
        "failed or timed out" if kind == "All" else ("failed" if kind == "Failed" else "timed out")
    )
    return (
        f"{failed} of {finished} finished nodes {what} ({failed * 100 // finished}%), "
        f"at or above the abort threshold of {criterion.threshold_percentage}%"
    )


def _default(finished: int, failures: list[str], in_flight: int) -> str | None:
    """Without criteria: stop once every finished node failed and none is still updating
    (nodes with no agent neither finish nor fail here: they make the deployment Degraded)."""
    agentless = failures.count("NoAgent")
    finished, failed = finished - agentless, len(failures) - agentless
    if in_flight or finished == 0 or failed < finished:
        return None
    return (
        f"all {finished} finished node{'s' if finished > 1 else ''} failed"
        " (the default abort rule: spec.abort.criteria is empty)"
    )
