"""What the agent records after acting: attempt counting, the phase a settled model shows, the
status fields of what serves. Pure: loop.py applies these to its state and reports them.

policy.py decides what to do next; this module says what a result means for status.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

from edge_rollout.api.edgenode import LatencySummary, ModelError, ModelStatus
from edge_rollout_agent.policy import Action, Failure, Installed
from edge_rollout_agent.reporting import SETTLED


def next_failure(
    old: Failure | None, version: str, variant: str, reason: str, now: datetime
) -> Failure:
    """The failure to remember: attempts count up while the same version/variant keeps failing.

    >>> t = datetime(2026, 1, 1)
    >>> next_failure(Failure("1", "int8", "X", 2, t), "1", "int8", "Y", t).attempts
    3
    >>> next_failure(Failure("1", "int8", "X", 2, t), "2", "int8", "Y", t).attempts
    1
    """
    same = old is not None and (old.version, old.variant) == (version, variant)
    attempts = old.attempts + 1 if same and old is not None else 1
    return Failure(version, variant, reason, attempts, now)


def settled(action: Action, previous: ModelStatus | None) -> dict[str, object] | None:
    """Status changes for Keep, Wait or Hold (files untouched); None: leave status as it is
    (a Hold of a model already Failed keeps its own error)."""
    if action.kind == "Keep":
        # a Keep leaves a settled phase as it is: a rolled-back node stays RolledBack
        phase = previous.phase if previous and previous.phase in SETTLED else "Ready"
        return {"phase": phase, "last_error": None, "progress_percent": 100}
    if action.kind == "Hold" and previous is not None and previous.phase == "Failed":
        return None
    phase = "Failed" if action.kind == "Hold" else "Pending"
    # for Pending, last_error says why it waits (window, metered link, heat, defer)
    return {"phase": phase, "last_error": ModelError(reason=action.reason, message=action.message)}


def switched_phase(action: Action) -> str:
    """The phase after switching to a version kept on disk."""
    return "RolledBack" if action.kind == "Rollback" else "Ready"


def active(item: Installed | None) -> dict[str, object]:
    """The status fields that name what `current` serves ("" for nothing)."""
    if item is None:
        return {"active_version": "", "active_variant": ""}
    return {"active_version": item.version, "active_variant": item.variant}


def measured(p50_ms: float, p95_ms: float, memory_bytes: int) -> dict[str, object]:
    """The status fields of a measurement of the active model."""
    latency = LatencySummary(p50_ms=round(p50_ms, 3), p95_ms=round(p95_ms, 3))
    return {"latency": latency, "memory_bytes": memory_bytes}


def corrupted(message: str) -> ModelError:
    return ModelError(reason="Corrupted", message=message[:2000])


def failed(reason: str, message: str) -> ModelError:
    return ModelError(reason=reason, message=message[:2000])


def shifted_failures(failures: dict[str, Failure], jump: timedelta) -> dict[str, Failure]:
    """Failures with their times moved by a wall-clock jump (backoff keeps its elapsed time)."""
    return {k: dataclasses.replace(f, at=f.at + jump) for k, f in failures.items()}


def heartbeat_wait(heartbeat: float, jitter: float, draw: random.Random | None = None) -> float:
    """Seconds until the next step: the heartbeat ± `jitter` of it, at least half a second."""
    spread = heartbeat * jitter
    return max(0.5, heartbeat + (draw or random).uniform(-spread, spread))
