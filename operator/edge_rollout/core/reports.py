"""Agents' reports as untrusted input: an EdgeNode read from the cluster, its status checked,
and whether its agent still reports at all.

Pure (the caller passes the time the report was received). A status the operator cannot use, one
that fails the API types or says something impossible (a time in the future, an unknown time
zone), is replaced by an empty one holding a `ReportValid=False` condition, reason
`ReportInvalid`, whose message names the field. Plans hold such a node where it is and report it
(`hold_invalid`), as they hold a node whose agent stopped reporting (`hold_silent`: NoAgent);
other nodes and deployments are planned as if it were not there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import compress, repeat
from operator import attrgetter, lt

from pydantic import ValidationError

from edge_rollout.api.common import Condition
from edge_rollout.api.edgenode import EdgeNode, EdgeNodeStatus
from edge_rollout.api.modeldeployment import is_iana_zone
from edge_rollout.core import selection
from edge_rollout.core.conditions import parse_rfc3339, rfc3339
from edge_rollout.core.values import NodeInput, NodeOutcome, Selection

REPORT_VALID = "ReportValid"
REPORT_INVALID = "ReportInvalid"
CLOCK_SKEW = timedelta(minutes=10)
"""How far ahead of the operator's clock an agent's times may be."""
_PROBLEM = attrgetter("report_problem")
HELD = "the node is held where it is until its agent sends a usable report"
AGENT_NOT_REPORTING = "AgentNotReporting"
AGENT_HEARTBEAT = timedelta(seconds=30)
"""How often agents report when nothing changes: `edge-rollout-agent --heartbeat` and the chart's
`agent.heartbeatSeconds` (the operator reads it from EDGE_ROLLOUT_AGENT_HEARTBEAT_SECONDS)."""
AGENT_HEARTBEAT_ENV = "EDGE_ROLLOUT_AGENT_HEARTBEAT_SECONDS"
MAX_HEARTBEAT = timedelta(days=1)
MISSED_HEARTBEATS = 4
"""An agent silent for this many heartbeats is gone, as Kubernetes marks a Node NotReady
(Unknown) when its kubelet missed 4 status updates (node-monitor-grace-period 40 s, every 10 s)."""


@dataclass(frozen=True)
class Heard:
    """When each node's agent was last heard from, on the operator's clock (when the operator
    first saw its latest heartbeat, so a node whose clock is off is not taken for silent; for a
    heartbeat already there when the operator started, when it started watching; a node missing
    never reported), and the agents' heartbeat."""

    last: Mapping[str, datetime]
    heartbeat: timedelta = AGENT_HEARTBEAT

    @property
    def grace(self) -> timedelta:
        """How long an agent may stay silent before its node counts as NoAgent."""
        return MISSED_HEARTBEATS * self.heartbeat


def heartbeat_setting(text: str | None) -> timedelta:
    """The agents' heartbeat from the text of $EDGE_ROLLOUT_AGENT_HEARTBEAT_SECONDS; the agent's
    default when it is unset or not a positive number of seconds up to a day (the chart's schema
    allows only those).

    >>> heartbeat_setting("10"), heartbeat_setting(None) == AGENT_HEARTBEAT
    (datetime.timedelta(seconds=10), True)
    """
    try:
        seconds = timedelta(seconds=float(text or ""))
    except (ValueError, OverflowError):
        return AGENT_HEARTBEAT
    return seconds if timedelta(0) < seconds <= MAX_HEARTBEAT else AGENT_HEARTBEAT


def heard_from_heartbeats(edgenodes: Mapping[str, EdgeNode], heartbeat: timedelta) -> Heard:
    """When each agent last reported as its own EdgeNode says (its heartbeatTime, on the node's
    clock): what a reader other than the operator, which saw each heartbeat arrive, can know."""
    beats = ((name, parse_rfc3339(e.status.heartbeat_time)) for name, e in edgenodes.items())
    return Heard({name: beat for name, beat in beats if beat is not None}, heartbeat)


def read_edgenode(body: Mapping[str, object], received: datetime) -> EdgeNode:
    """The EdgeNode in `body`; its status replaced by a ReportInvalid marker when unusable.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> bad = {"metadata": {"name": "n1"}, "status": {"heartbeatTime": "yesterday"}}
    >>> print(report_problem(read_edgenode(bad, t)))  # doctest: +ELLIPSIS
    status.heartbeatTime: must be an RFC 3339 time with a zone, ...; got "yesterday"; the node ...
    """
    try:
        edgenode = EdgeNode.model_validate(dict(body))
    except ValidationError as error:
        spec_only = EdgeNode.model_validate({**body, "status": {}})
        return _invalid(spec_only, _first_error(error), received)
    problem = check_status(edgenode.status, received)
    return edgenode if problem is None else _invalid(edgenode, problem, received)


def check_status(status: EdgeNodeStatus, received: datetime) -> str | None:
    """What makes a status that has the API types unusable, naming the field; None if nothing.

    >>> from datetime import UTC
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> print(check_status(EdgeNodeStatus(heartbeat_time="2026-01-01T00:30:00Z"), t))
    ... # doctest: +ELLIPSIS
    status.heartbeatTime: 2026-01-01T00:30:00Z is 30 minutes after the operator received ...
    """
    for field, text in _times(status):
        problem = _check_time(field, text, received)
        if problem is not None:
            return problem
    zone = status.hardware.time_zone
    if zone and not is_iana_zone(zone):
        return (
            f'status.hardware.timeZone: "{zone}" is not an IANA time zone (like Europe/Berlin):'
            " fix the node's zone or its hardware profile"
        )
    return None


def report_problem(edgenode: EdgeNode | None) -> str | None:
    """Why the node's report could not be used, or None when it could."""
    if edgenode is None:
        return None
    for condition in edgenode.status.conditions:
        if condition.type == REPORT_VALID and condition.status == "False":
            return condition.message
    return None


def hold_invalid(
    chosen: Selection,
) -> tuple[Selection, tuple[NodeOutcome, ...]]:
    """The selected nodes whose reports are usable, and an outcome for each of the others:
    unschedulable for ReportInvalid, keeping the entry it has (nothing on it changes)."""
    if not any(map(_PROBLEM, chosen.nodes)):  # in C: the usual case costs little at 10,000 nodes
        return chosen, ()
    usable = tuple(n for n in chosen.nodes if not n.report_problem)
    held = tuple(_held(n) for n in chosen.nodes if n.report_problem)
    return type(chosen)(usable, chosen.removed, chosen.unique), held


def hold_silent(
    chosen: Selection, heard: Heard | None, now: datetime
) -> tuple[Selection, tuple[NodeOutcome, ...]]:
    """The selected nodes whose agents report, and for each node whose agent was last heard
    from longer than `heard.grace` before `now` an outcome as `hold_invalid` gives, reason
    AgentNotReporting (NoAgent): it is not asked for anything, does not count as failed or
    timed out, and keeps its entry until its agent reports again. A node whose agent never
    reported is not held here (selection waits for its hardware: AwaitingHardwareReport).

    >>> from datetime import UTC
    >>> from edge_rollout.api.edgenode import Hardware
    >>> t = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    >>> heard = Heard({"n1": datetime(2026, 1, 1, 0, 5, tzinfo=UTC)})
    >>> node = NodeInput("n1", {}, Hardware())
    >>> kept, held = hold_silent(Selection((node,), (), True), heard, t)
    >>> kept.nodes, held[0].state, held[0].choice.reason
    ((), 'unschedulable', 'AgentNotReporting')
    """
    if heard is None or not heard.last:
        return chosen, ()
    cutoff = now - heard.grace
    last = tuple(map(heard.last.get, map(_NAME, chosen.nodes), repeat(_NEVER)))
    if min(last, default=_NEVER) >= cutoff:  # in C: the usual case costs little at 10,000 nodes
        return chosen, ()
    silent = set(compress(range(len(last)), map(lt, last, repeat(cutoff))))
    usable = tuple(n for i, n in enumerate(chosen.nodes) if i not in silent)
    held = tuple(_silent(chosen.nodes[i], last[i], heard) for i in sorted(silent))
    return type(chosen)(usable, chosen.removed, chosen.unique), held


_NAME = attrgetter("name")
_NEVER = datetime.max.replace(tzinfo=UTC)
"""Stands for a node whose agent never reported: never silent (it awaits its hardware report)."""


def _silent(node: NodeInput, last: datetime, heard: Heard) -> NodeOutcome:
    message = (
        f"node {node.name}: its agent has sent no heartbeat since {rfc3339(last)},"
        f" more than {_seconds(heard.grace)} ago ({MISSED_HEARTBEATS} heartbeats of"
        f" {_seconds(heard.heartbeat)}): NoAgent, held"
        " where it is until it reports again; start edge-rollout-agent on the node or see why it"
        f" cannot reach the apiserver (kubectl get edgenode {node.name} shows its heartbeat)"
    )
    choice = selection.Choice(node.name, None, AGENT_NOT_REPORTING, message)
    return NodeOutcome(node.name, "unschedulable", node.desired, choice, None)


def _seconds(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    return f"{seconds} s" if seconds < 120 else _minutes(delta)


def _held(node: NodeInput) -> NodeOutcome:
    choice = selection.Choice(node.name, None, REPORT_INVALID, node.report_problem)
    return NodeOutcome(node.name, "unschedulable", node.desired, choice, None)


def _invalid(edgenode: EdgeNode, problem: str, received: datetime) -> EdgeNode:
    condition = Condition(
        type=REPORT_VALID,
        status="False",
        reason=REPORT_INVALID,
        message=f"{problem}; {HELD}"[:32768],
        last_transition_time=rfc3339(received),
    )
    return edgenode.model_copy(update={"status": EdgeNodeStatus(conditions=[condition])})


def _times(status: EdgeNodeStatus) -> list[tuple[str, str]]:
    found = [("status.heartbeatTime", status.heartbeat_time)]
    for i, model in enumerate(status.models):
        found.append((f"status.models[{i}].lastTransitionTime", model.last_transition_time))
        found.append((f"status.models[{i}].readySince", model.ready_since))
    for i, condition in enumerate(status.conditions):
        found.append((f"status.conditions[{i}].lastTransitionTime", condition.last_transition_time))
    return [(field, text) for field, text in found if text]


def _check_time(field: str, text: str, received: datetime) -> str | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return f'{field}: "{text}" is not a valid RFC 3339 time (like 2026-03-06T23:00:00Z)'
    if moment.tzinfo is None:
        return f'{field}: "{text}" has no time zone: end it with Z or an offset like +01:00'
    ahead = moment - received
    if ahead > CLOCK_SKEW:
        return (
            f"{field}: {text} is {_minutes(ahead)} after the operator received the report:"
            " set the node's clock (NTP)"
        )
    return None


def _minutes(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    return f"{minutes} minutes" if minutes < 120 else f"{round(minutes / 60)} hours"


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    value = first.get("input")
    message = first["msg"]
    if first["type"] != "string_format" and isinstance(value, str | int | float | bool):
        message += f"; got {value!r}"[:200]
    return f"{path}: {message}"
