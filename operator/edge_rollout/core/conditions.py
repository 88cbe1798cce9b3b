"""Conditions in the metav1.Condition shape, as kstatus, Argo CD and Flux read them.

Pure: takes `now`, never reads the clock; returns new lists, never mutates. Keeps
`lastTransitionTime` when a condition's status does not change.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edge_rollout.api.common import Condition, ConditionStatus


def rfc3339(moment: datetime) -> str:
    """`2026-11-21T21:00:00Z`: seconds precision in UTC, as Kubernetes writes times.

    Naive datetimes are taken as UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime | None:
    """The moment an RFC 3339 time with a zone names; None for "" or anything else.

    >>> parse_rfc3339("2026-01-01T00:05:00Z"), parse_rfc3339("noon")
    (datetime.datetime(2026, 1, 1, 0, 5, tzinfo=datetime.timezone.utc), None)
    """
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def set_condition(
    conditions: list[Condition],
    *,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """`conditions` with `type_` set; other types keep their place, a new type is appended.

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> c = set_condition([], type_="Ready", status="False", reason="Pending", message="",
    ...                   generation=1, now=t)
    >>> c[0].last_transition_time
    '2026-01-01T00:00:00Z'
    """
    old = next((c for c in conditions if c.type == type_), None)
    moved = old is None or old.status != status
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        observed_generation=generation,
        last_transition_time=rfc3339(now) if moved or old is None else old.last_transition_time,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type_ else c for c in conditions]


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of that type, if present."""
    return next((c for c in conditions if c.type == type_), None)


STANDARD = ("Ready", "Progressing", "Degraded", "Reconciling", "Stalled")
"""The conditions a ModelDeployment always carries (kstatus reads Ready, Reconciling, Stalled)."""


def set_standard_conditions(
    conditions: list[Condition],
    *,
    true: frozenset[str],
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Every standard condition set: those in `true` True, the others False, one reason."""
    for type_ in STANDARD:
        conditions = set_condition(
            conditions,
            type_=type_,
            status="True" if type_ in true else "False",
            reason=reason,
            message=message,
            generation=generation,
            now=now,
        )
    return conditions
