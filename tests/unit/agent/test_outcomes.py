"""The agent's pure record of results: attempt counting, the phase a settled model shows, the
fields naming what serves. Every settling Action (Keep, Wait, Hold), from every phase the API
knows (ModelPhase, the agent's whole vocabulary), gives a status that agrees with the action."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.api.edgenode import ModelPhase, ModelStatus
from edge_rollout_agent import outcomes
from edge_rollout_agent.policy import Action, ActionKind, Failure, Installed

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PHASES = list(get_args(ModelPhase))
SETTLE_KINDS = ("Keep", "Wait", "Hold")


def status(phase: str) -> ModelStatus:
    return ModelStatus.model_validate({"name": "ns/m", "phase": phase})


@given(
    kind=st.sampled_from(SETTLE_KINDS),
    previous=st.none() | st.sampled_from(PHASES),
    reason=st.sampled_from(["UpToDate", "OutsideWindow", "TestVectorMismatch", "Backoff"]),
)
def test_a_settled_status_agrees_with_the_action(
    kind: ActionKind, previous: str | None, reason: str
) -> None:
    action = Action(kind, reason, "why")
    before = None if previous is None else status(previous)
    changes = outcomes.settled(action, before)
    if kind == "Hold" and previous == "Failed":
        assert changes is None  # its own error stays
        return
    assert changes is not None
    if kind == "Keep":
        assert changes["last_error"] is None
        assert changes["phase"] == (previous if previous in ("Ready", "RolledBack") else "Ready")
    else:
        assert changes["phase"] == ("Failed" if kind == "Hold" else "Pending")
        assert getattr(changes["last_error"], "reason", None) == reason


def test_every_phase_the_agent_reports_is_known_to_the_api() -> None:
    assert {"Pending", "Ready", "Failed", "RolledBack", "Testing"} <= set(PHASES)


@given(st.lists(st.sampled_from([("1", "int8"), ("1", "fp32"), ("2", "int8")]), min_size=1))
def test_attempts_count_consecutive_failures_of_one_version_and_variant(
    targets: list[tuple[str, str]],
) -> None:
    failure: Failure | None = None
    run = 0
    for i, (version, variant) in enumerate(targets):
        same = i > 0 and targets[i - 1] == (version, variant)
        run = run + 1 if same else 1
        failure = outcomes.next_failure(failure, version, variant, "LoadError", NOW)
        assert failure.attempts == run
        assert (failure.version, failure.variant, failure.at) == (version, variant, NOW)


def test_the_switched_phase_says_whether_it_was_a_rollback() -> None:
    assert outcomes.switched_phase(Action("Rollback", "OnDisk")) == "RolledBack"
    assert outcomes.switched_phase(Action("Activate", "OnDisk")) == "Ready"


def test_active_names_what_serves_or_nothing() -> None:
    assert outcomes.active(None) == {"active_version": "", "active_variant": ""}
    assert outcomes.active(Installed("1.0", "int8")) == {
        "active_version": "1.0",
        "active_variant": "int8",
    }


@given(jump=st.integers(min_value=-86400, max_value=86400))
def test_a_clock_jump_moves_every_failure_by_as_much(jump: int) -> None:
    failures = {"a": Failure("1", "x", "R", 1, NOW), "b": Failure("2", "y", "R", 3, NOW)}
    moved = outcomes.shifted_failures(failures, timedelta(seconds=jump))
    assert {k: f.at - failures[k].at for k, f in moved.items()} == {
        "a": timedelta(seconds=jump),
        "b": timedelta(seconds=jump),
    }
    assert [f.attempts for f in moved.values()] == [1, 3]


@given(
    heartbeat=st.floats(min_value=0.1, max_value=600),
    jitter=st.floats(min_value=0, max_value=0.5),
    seed=st.integers(0, 2**32),
)
def test_the_heartbeat_wait_stays_within_its_jitter(
    heartbeat: float, jitter: float, seed: int
) -> None:
    wait = outcomes.heartbeat_wait(heartbeat, jitter, random.Random(seed))
    low, high = max(0.5, heartbeat * (1 - jitter)), max(0.5, heartbeat * (1 + jitter))
    assert low - 1e-9 <= wait <= high + 1e-9
