"""A decision (abort, rollback target, stable version, step) written to status before its
EdgeNode entries: a planner that starts from that status, with none of the entries written yet,
asks for the same entries (issue 14.8: a crash between the two writes changes nothing)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.core import planning
from edge_rollout.core import status as status_core
from tests.unit.core.fixtures import Fleet
from tests.unit.core.test_planning import installed

BROKEN = frozenset(f"2.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu"))


def entries_after_crash(f: Fleet, plan: planning.Plan) -> dict[str, object]:
    """The entries a restarted operator asks for when only `plan.status` was written."""
    written = f.status
    f.status = plan.status
    try:
        return dict(f.plan().desired)
    finally:
        f.status = written


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(min_value=2, max_value=20),
    max_unavailable=st.integers(min_value=1, max_value=5),
    broken=st.sets(st.integers(min_value=0, max_value=19), max_size=10),
    delay=st.integers(min_value=1, max_value=60),
)
def test_a_decision_written_first_is_acted_on_the_same_after_a_crash(
    count: int, max_unavailable: int, broken: set[int], delay: int
) -> None:
    f = installed(count, maxUnavailable=max_unavailable, steps=[{"setNodePercent": 50}])
    for i in broken & set(range(count)):
        f.nodes[i].broken = BROKEN
    decisions = 0
    for _ in range(300):
        f.now += timedelta(seconds=15)
        for node in f.nodes:
            node.agent_step(f.now, timedelta(seconds=delay))
        plan = f.plan()
        if status_core.carries_decision(f.status, plan.status):
            decisions += 1
            assert entries_after_crash(f, plan) == plan.desired
        f.apply(plan)
        if f.phase in ("Ready", "Degraded", "RolledBack"):
            break
    assert decisions >= 1


def test_the_abort_verdict_is_a_decision() -> None:
    f = installed(6, maxUnavailable=2)
    for node in f.nodes:
        node.broken = BROKEN
    for _ in range(60):
        f.now += timedelta(seconds=15)
        for node in f.nodes:
            node.agent_step(f.now, timedelta(seconds=5))
        plan = f.plan()
        if plan.status.abort_reason:
            assert status_core.carries_decision(f.status, plan.status)
            back = entries_after_crash(f, plan)
            assert all(e is None or e.version == "1.0" for e in back.values())  # type: ignore[attr-defined]
            return
        f.apply(plan)
    raise AssertionError("never aborted")
