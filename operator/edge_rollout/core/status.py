"""The ModelDeployment status when the operator cannot plan (the spec or its release is unusable)
or cannot write part of a plan (EdgeNode entries the apiserver refused).

Pure: takes the previous status and `now`; returns the next one. Nothing on the nodes changes
while a deployment is stalled; the condition says what is wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.core.conditions import find_condition, set_condition, set_standard_conditions
from edge_rollout.core.fleet import Event


def stalled_status(
    status: ModelDeploymentStatus, *, generation: int, reason: str, message: str, now: datetime
) -> ModelDeploymentStatus:
    """Phase Degraded, Ready=False, Degraded=True and Stalled=True with `reason` until the
    spec or the store is fixed (the PHASE column is never empty).

    >>> from datetime import UTC
    >>> s = stalled_status(ModelDeploymentStatus(), generation=2, reason="ReleaseNotFound",
    ...                    message="m", now=datetime(2026, 1, 1, tzinfo=UTC))
    >>> (s.observed_generation, [c.type + "=" + c.status for c in s.conditions])
    (2, ['Ready=False', 'Progressing=False', 'Degraded=True', 'Reconciling=False', 'Stalled=True'])
    >>> s.phase
    'Degraded'
    """
    conditions = set_standard_conditions(
        status.conditions,
        true=frozenset({"Degraded", "Stalled"}),
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
    return status.model_copy(
        update={
            "observed_generation": generation,
            "phase": "Degraded",
            "conditions": conditions,
            "message": message,
        }
    )


WRITES = "EdgeNodesWritten"
"""The condition that says whether every EdgeNode entry of the last plan was written."""
WRITE_FAILED = "EdgeNodeWriteFailed"
SHOWN_FAILURES = 5


def with_write_failures(
    status: ModelDeploymentStatus,
    failures: Mapping[str, str],
    *,
    generation: int,
    now: datetime,
) -> tuple[ModelDeploymentStatus, tuple[Event, ...]]:
    """The plan's `status` with the EdgeNodesWritten condition (node -> error in `failures`),
    and a Warning event when the failures are new. The rest of the plan stands: the operator
    writes the failed entries again on its next plan. Without failures, the condition turns True
    if it was there and stays absent otherwise.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> s, events = with_write_failures(ModelDeploymentStatus(), {"n1": "HTTP 422: no"},
    ...                                 generation=1, now=t)
    >>> (s.conditions[0].status, s.conditions[0].reason, events[0].reason)
    ('False', 'EdgeNodeWriteFailed', 'EdgeNodeWriteFailed')
    >>> s.conditions[0].message.split(";")[0]
    'EdgeNode n1: HTTP 422: no'
    """
    had = find_condition(status.conditions, WRITES)
    if not failures and had is None:
        return status, ()
    if not failures:
        message = "every EdgeNode entry of the last plan is written"
        conditions = set_condition(status.conditions, type_=WRITES, status="True",
                                   reason="Written", message=message, generation=generation,
                                   now=now)  # fmt: skip
        return status.model_copy(update={"conditions": conditions}), ()
    message = _failures_message(failures)
    conditions = set_condition(status.conditions, type_=WRITES, status="False",
                               reason=WRITE_FAILED, message=message, generation=generation,
                               now=now)  # fmt: skip
    fresh = had is None or had.message != message
    events = (Event("Warning", WRITE_FAILED, message),) if fresh else ()
    return status.model_copy(update={"conditions": conditions}), events


def _failures_message(failures: Mapping[str, str]) -> str:
    names = sorted(failures)
    shown = "; ".join(f"EdgeNode {n}: {failures[n]}" for n in names[:SHOWN_FAILURES])
    more = f" (and {len(names) - SHOWN_FAILURES} more)" if len(names) > SHOWN_FAILURES else ""
    which = "it" if len(names) == 1 else "them"
    return (
        f"{shown}{more}; the operator writes {which} again on every plan, the rest of the"
        " rollout proceeds"
    )


def decision(status: ModelDeploymentStatus) -> tuple[str, str, str, int, str]:
    """What the planner re-derives the rollout from (planning._rollout_state): target and stable
    versions, the abort verdict and the step in progress. A change of any of these changes what
    nodes are asked for, so it is written to status before the EdgeNode entries that act on it."""
    return (
        status.target_version,
        status.stable_version,
        status.abort_reason,
        status.current_step_index,
        status.step_started_at,
    )


def carries_decision(current: ModelDeploymentStatus, nxt: ModelDeploymentStatus) -> bool:
    """Whether `nxt` decides something `current` does not (then status is written first).

    >>> carries_decision(ModelDeploymentStatus(), ModelDeploymentStatus(abort_reason="x"))
    True
    >>> carries_decision(ModelDeploymentStatus(), ModelDeploymentStatus(message="x"))
    False
    """
    return decision(current) != decision(nxt)
