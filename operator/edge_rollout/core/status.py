"""The ModelDeployment status the operator reports before any rollout planning happens.

Pure: takes the parsed object and `now`; returns the next status. The rollout planner (a later
stage) replaces `phase`, counts and the Ready reason; observedGeneration and the condition set
keep this shape.
"""

from __future__ import annotations

from datetime import datetime

from edge_rollout.api.common import Condition, ConditionStatus
from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.core.conditions import set_condition

Rows = tuple[tuple[str, ConditionStatus, str], ...]


def _apply(
    conditions: list[Condition], rows: Rows, message: str, generation: int, now: datetime
) -> list[Condition]:
    for type_, value, reason in rows:
        conditions = set_condition(
            conditions,
            type_=type_,
            status=value,
            reason=reason,
            message=message,
            generation=generation,
            now=now,
        )
    return conditions


def accepted_status(
    status: ModelDeploymentStatus, *, generation: int, version: str, now: datetime
) -> ModelDeploymentStatus:
    """Status for a spec that parsed: generation observed, Ready=False while work is pending.

    >>> from datetime import UTC
    >>> s = accepted_status(ModelDeploymentStatus(), generation=2, version="1.0",
    ...                     now=datetime(2026, 1, 1, tzinfo=UTC))
    >>> (s.observed_generation, [c.type + "=" + c.status for c in s.conditions])
    (2, ['Ready=False', 'Reconciling=True', 'Stalled=False'])
    """
    message = f"generation {generation} accepted: rolling out version {version}"
    rows: Rows = (
        ("Ready", "False", "RolloutPending"),
        ("Reconciling", "True", "RolloutPending"),
        ("Stalled", "False", "SpecAccepted"),
    )
    conditions = _apply(status.conditions, rows, message, generation, now)
    return status.model_copy(
        update={
            "observed_generation": generation,
            "conditions": conditions,
            "phase": "Pending",
            "target_version": version,
            "message": message,
        }
    )


def invalid_status(
    status: ModelDeploymentStatus, *, generation: int, message: str, now: datetime
) -> ModelDeploymentStatus:
    """Status for a spec the operator cannot act on: Stalled=True until the spec changes."""
    rows: Rows = (
        ("Ready", "False", "InvalidSpec"),
        ("Reconciling", "False", "InvalidSpec"),
        ("Stalled", "True", "InvalidSpec"),
    )
    conditions = _apply(status.conditions, rows, message, generation, now)
    return status.model_copy(
        update={
            "observed_generation": generation,
            "conditions": conditions,
            "phase": "Failed",
            "message": message,
        }
    )
