"""core/status.with_write_failures: refused EdgeNode writes become a condition and one Event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.core import status as status_core
from edge_rollout.core.fleet import Event

NOW = datetime(2026, 3, 6, 12, tzinfo=UTC)


def written(
    status: ModelDeploymentStatus, failures: dict[str, str], minutes: int = 0
) -> tuple[ModelDeploymentStatus, tuple[Event, ...]]:
    return status_core.with_write_failures(
        status, failures, generation=3, now=NOW + timedelta(minutes=minutes)
    )


def test_no_failures_and_no_condition_change_nothing() -> None:
    before = ModelDeploymentStatus()
    assert written(before, {}) == (before, ())


def test_failures_are_named_once_and_cleared_when_written() -> None:
    failed, events = written(ModelDeploymentStatus(), {"n2": "HTTP 422: no", "n1": "HTTP 403: x"})
    (condition,) = failed.conditions
    assert (condition.type, condition.status, condition.observed_generation) == (
        "EdgeNodesWritten",
        "False",
        3,
    )
    assert condition.message.startswith("EdgeNode n1: HTTP 403: x; EdgeNode n2: HTTP 422: no;")
    assert [e.type for e in events] == ["Warning"]
    again, repeated = written(failed, {"n2": "HTTP 422: no", "n1": "HTTP 403: x"}, minutes=1)
    assert repeated == ()  # the same failures: no new Event every plan
    assert again.conditions == failed.conditions
    cleared, none = written(again, {}, minutes=2)
    assert (cleared.conditions[0].status, cleared.conditions[0].reason, none) == (
        "True",
        "Written",
        (),
    )


def test_many_failures_are_summarized() -> None:
    failures = {f"n{i:02d}": "HTTP 500: down" for i in range(12)}
    status, _ = written(ModelDeploymentStatus(), failures)
    message = status.conditions[0].message
    assert message.count("EdgeNode ") == status_core.SHOWN_FAILURES
    assert "(and 7 more)" in message
