"""Pure construction of what the agent reports: per-model status, the node's Ready condition.

Tracks transition times and readySince, and says whether a new status differs from the last one
sent in anything but the heartbeat and fast-moving gauges. Takes `now` as an argument; no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edge_rollout.api.common import Condition, ConditionStatus
from edge_rollout.api.edgenode import EdgeNodeStatus, Hardware, ModelStatus

SETTLED = ("Ready", "RolledBack")
VOLATILE_HARDWARE = ("memoryAvailableBytes", "diskFreeBytes", "temperatureCelsius")


def rfc3339(now: datetime) -> str:
    """`2026-03-06T23:00:00Z` (seconds, UTC)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def transition(prev: ModelStatus | None, name: str, now: datetime, **changes: Any) -> ModelStatus:
    """`prev` with `changes` applied; lastTransitionTime moves when the phase changes and
    readySince when a new version becomes active and Ready."""
    base = prev or ModelStatus(name=name)
    updated = base.model_copy(update=changes)
    if updated.phase != base.phase or prev is None:
        updated = updated.model_copy(update={"last_transition_time": rfc3339(now)})
    became_ready = updated.phase in SETTLED and (
        base.phase not in SETTLED
        or (base.active_version, base.active_variant)
        != (updated.active_version, updated.active_variant)
    )
    if became_ready:
        updated = updated.model_copy(update={"ready_since": rfc3339(now)})
    return updated


def ready_condition(
    models: list[ModelStatus],
    desired: int,
    previous: list[Condition],
    now: datetime,
    generation: int = 0,
) -> Condition:
    """Ready=True when every desired model is Ready or RolledBack; `generation` is the EdgeNode's
    metadata.generation whose spec this report answers (kstatus reads observedGeneration)."""
    settled = [m for m in models if m.phase in SETTLED]
    status: ConditionStatus
    failed = sorted(m.name for m in models if m.phase == "Failed")
    if len(settled) >= desired:
        status, reason, message = "True", "AllModelsReady", f"{desired} model(s) serving"
    elif failed:
        status, reason, message = "False", "ModelFailed", "failed: " + ", ".join(failed)
    else:
        status, reason, message = "False", "Progressing", f"{len(settled)}/{desired} ready"
    old = next((c for c in previous if c.type == "Ready"), None)
    since = old.last_transition_time if old and old.status == status else rfc3339(now)
    return Condition(type="Ready", status=status, reason=reason, message=message,
                     observed_generation=generation, last_transition_time=since)  # fmt: skip


def node_status(
    hardware: Hardware,
    models: list[ModelStatus],
    desired: int,
    previous: EdgeNodeStatus | None,
    now: datetime,
    agent_version: str,
    generation: int = 0,
) -> EdgeNodeStatus:
    """The whole status the agent writes, models sorted by name, for the EdgeNode spec of
    metadata.generation `generation`."""
    conditions = previous.conditions if previous else []
    ordered = sorted(models, key=lambda m: m.name)
    return EdgeNodeStatus(
        hardware=hardware,
        heartbeat_time=rfc3339(now),
        agent_version=agent_version,
        models=ordered,
        conditions=[ready_condition(ordered, desired, conditions, now, generation)],
    )


def significant(status: EdgeNodeStatus) -> dict[str, Any]:
    """What counts as a change worth a patch (not the heartbeat or fast-moving gauges)."""
    body = status.model_dump(mode="json", by_alias=True)
    body.pop("heartbeatTime", None)
    for key in VOLATILE_HARDWARE:
        body["hardware"].pop(key, None)
    return body


def differs(new: EdgeNodeStatus, old: EdgeNodeStatus | None) -> bool:
    """The new status changes something besides the heartbeat."""
    return old is None or significant(new) != significant(old)
