"""The ModelDeployment status when the operator cannot plan: the spec or its release is unusable.

Pure: takes the previous status and `now`; returns the next one. Nothing on the nodes changes
while a deployment is stalled; the condition says what is wrong and what to do.
"""

from __future__ import annotations

from datetime import datetime

from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.core.conditions import set_standard_conditions


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
