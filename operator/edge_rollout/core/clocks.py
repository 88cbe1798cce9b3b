"""Agents' clocks seen from the operator's: how far a node's clock is off, and its reported times
moved onto the operator's clock, so that soak (minReadySeconds) is judged on one clock whatever
the nodes' clocks say.

Pure: the caller passes when it first saw the node's current heartbeat (its own clock), which
`Sightings` keeps in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from edge_rollout.api.edgenode import EdgeNode, ModelStatus
from edge_rollout.core.conditions import parse_rfc3339, rfc3339

SKEW_WARNING = timedelta(minutes=2)
"""A node clock off by more than this (either way) is reported: a Warning Event `ClockSkew` on
its EdgeNode. Times more than `reports.CLOCK_SKEW` (10 minutes) ahead make the whole report
ReportInvalid instead (core/reports), so a report read here is at most 10 minutes ahead."""


class Sighting(NamedTuple):
    seen: datetime
    """When this operator first saw the node's current heartbeat (its own clock)."""
    arrived: bool
    """Whether it saw that heartbeat arrive, i.e. replace one it had seen before. A heartbeat
    already there when the operator started (or first met a node) may be hours old, from an agent
    that died: its age says nothing about the node's clock."""


@dataclass
class Sightings:
    """Each node's current heartbeat and when this operator first saw it. An EdgeNode event
    without a new heartbeat (a spec write) keeps the first sighting, so the node's clock does not
    look behind.

    >>> from datetime import UTC
    >>> seen = Sightings()
    >>> seen.see("edge-1", "2026-01-01T00:00:00Z", datetime(2026, 1, 1, 1, tzinfo=UTC)).arrived
    False
    >>> seen.see("edge-1", "2026-01-01T01:00:30Z", datetime(2026, 1, 1, 1, 0, 30, tzinfo=UTC))[1]
    True
    """

    _last: dict[str, tuple[str, Sighting]] = field(default_factory=dict)

    def see(self, node: str, heartbeat: str, now: datetime) -> Sighting:
        last = self._last.get(node)
        if last is not None and last[0] == heartbeat:
            return last[1]
        sighting = Sighting(now, arrived=last is not None)
        self._last[node] = (heartbeat, sighting)
        return sighting

    def clear(self) -> None:
        self._last.clear()


def skew(edgenode: EdgeNode, seen: datetime) -> timedelta | None:
    """How far the node's clock runs ahead of the operator's (negative: behind): its heartbeat
    time minus when the operator first saw that heartbeat. None without a usable heartbeat.

    >>> from datetime import UTC
    >>> from edge_rollout.api.edgenode import EdgeNodeStatus
    >>> node = EdgeNode(status=EdgeNodeStatus(heartbeat_time="2026-01-01T00:05:00Z"))
    >>> skew(node, datetime(2026, 1, 1, tzinfo=UTC))
    datetime.timedelta(seconds=300)
    """
    beat = parse_rfc3339(edgenode.status.heartbeat_time)
    return None if beat is None else beat - seen


def on_operator_clock(edgenode: EdgeNode, seen: datetime) -> EdgeNode:
    """The EdgeNode with each model's readySince and lastTransitionTime moved by the node's skew
    onto the operator's clock (never later than `seen`: the operator saw the report then). The
    heartbeat time stays as the agent sent it (it is what the skew is measured from)."""
    offset = skew(edgenode, seen)
    if offset is None or not edgenode.status.models:
        return edgenode
    models = [_moved(model, offset, seen) for model in edgenode.status.models]
    status = edgenode.status.model_copy(update={"models": models})
    return edgenode.model_copy(update={"status": status})


def skew_warning(node: str, offset: timedelta | None) -> str | None:
    """The message of a ClockSkew Warning when the node's clock is off by more than
    SKEW_WARNING; None when it is not.

    >>> print(skew_warning("edge-1", timedelta(minutes=-40)))  # doctest: +ELLIPSIS
    node edge-1: its clock runs 40 minutes behind the operator's; ...
    """
    if offset is None or abs(offset) <= SKEW_WARNING:
        return None
    way = "ahead of" if offset > timedelta(0) else "behind"
    return (
        f"node {node}: its clock runs {_amount(abs(offset))} {way} the operator's; soak and"
        " deadlines are judged on the operator's clock, but set the node's clock (NTP): beyond"
        " 10 minutes ahead its reports are refused (ReportInvalid)"
    )


def _moved(model: ModelStatus, offset: timedelta, seen: datetime) -> ModelStatus:
    update = {}
    for name in ("ready_since", "last_transition_time"):
        moment = parse_rfc3339(getattr(model, name))
        if moment is not None:
            update[name] = rfc3339(min(moment - offset, seen))
    return model.model_copy(update=update) if update else model


def _amount(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} seconds"
    minutes = round(seconds / 60)
    return f"{minutes} minutes" if minutes < 120 else f"{round(minutes / 60)} hours"
