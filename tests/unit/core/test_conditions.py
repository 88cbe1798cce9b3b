"""Conditions keep their transition time unless their status changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_rollout.api.common import Condition
from edge_rollout.core.conditions import find_condition, rfc3339, set_condition

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_same_status_keeps_the_transition_time() -> None:
    first = set_condition(
        [], type_="Ready", status="False", reason="A", message="m", generation=1, now=T0
    )
    again = set_condition(
        first,
        type_="Ready",
        status="False",
        reason="B",
        message="n",
        generation=2,
        now=T0 + timedelta(minutes=5),
    )
    ready = find_condition(again, "Ready")
    assert ready is not None
    assert ready.last_transition_time == rfc3339(T0)
    assert (ready.reason, ready.observed_generation) == ("B", 2)


def test_new_status_moves_the_transition_time() -> None:
    first = set_condition(
        [], type_="Ready", status="False", reason="A", message="", generation=1, now=T0
    )
    later = T0 + timedelta(minutes=5)
    moved = set_condition(
        first, type_="Ready", status="True", reason="Done", message="", generation=1, now=later
    )
    assert moved[0].last_transition_time == rfc3339(later)


def test_other_conditions_keep_their_order() -> None:
    conditions: list[Condition] = []
    for type_ in ("Ready", "Progressing", "Degraded"):
        conditions = set_condition(
            conditions, type_=type_, status="False", reason="X", message="", generation=1, now=T0
        )
    updated = set_condition(
        conditions, type_="Progressing", status="True", reason="Y", message="", generation=1, now=T0
    )
    assert [c.type for c in updated] == ["Ready", "Progressing", "Degraded"]


def test_naive_times_are_taken_as_utc() -> None:
    assert rfc3339(datetime(2026, 1, 1, 12, 0)) == "2026-01-01T12:00:00Z"
