"""Abort criteria (Greengrass abortConfig): stop a rollout when too many finished nodes fail.

Pure. A node has finished when it is Ready on the new version for minReadySeconds (succeeded) or
has failed terminally (Failed: load or test vectors; TimedOut: past the progress deadline).
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_rollout.api.modeldeployment import Abort, AbortCriterion
from edge_rollout.core.fleet import NodeOutcome


def failure_type(outcome: NodeOutcome) -> str:
    """`Failed` when the agent reported a failure of this version, else `TimedOut`."""
    reported = outcome.reported
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
    return evaluate_counts(abort, len(finished), failures)


def evaluate_counts(abort: Abort, finished: int, failures: list[str]) -> str | None:
    """`evaluate` from the number of finished nodes and the failure type of each failed one.

    >>> evaluate_counts(Abort(criteria=[AbortCriterion(threshold_percentage=50)]), 2, ["Failed"])
    '1 of 2 finished nodes failed or timed out (50%), at or above the abort threshold of 50%'
    """
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
