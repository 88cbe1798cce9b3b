"""Rollout planning over a simulated fleet: waves, pauses, maxUnavailable, abort and rollback."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.api.modeldeployment import Approval
from edge_rollout.core import planning
from tests.unit.core.fixtures import MIB, Fleet, fleet, hardware


def installed(count: int = 10, **strategy: object) -> Fleet:
    """A fleet that finished rolling out 1.0, then asked for 2.0."""
    f = fleet(count)
    f.apply(f.plan())
    f.run()
    assert f.phase == "Ready", f.status.message
    merged = {**f.spec.strategy.model_dump(by_alias=True, exclude_none=True), **strategy}
    f.spec = f.spec.model_copy(update={"strategy": type(f.spec.strategy).model_validate(merged)})
    f.change_version("2.0")
    return f


def on_version(f: Fleet, version: str) -> int:
    return sum(1 for n in f.nodes if n.desired and n.desired.version == version)


def test_first_install_reaches_every_node_with_its_variant() -> None:
    f = fleet(6)
    f.apply(f.plan())
    f.run()
    assert f.phase == "Ready"
    assert f.status.stable_version == "1.0"
    variants = {n.name: n.desired.variant for n in f.nodes if n.desired}
    assert variants == {
        "node-000": "fp32",
        "node-001": "fp16",
        "node-002": "int8-npu",
        "node-003": "fp32",
        "node-004": "fp16",
        "node-005": "int8-npu",
    }
    ready = {c.type: c.status for c in f.status.conditions}
    assert ready == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
        "Reconciling": "False",
        "Stalled": "False",
    }


def test_waves_follow_the_steps_and_never_exceed_max_unavailable() -> None:
    f = installed(10, steps=[{"setNodePercent": 30}, {"pause": {}}])
    f.apply(f.plan())
    f.run(ticks=40)
    assert f.phase == "Paused"  # at the pause step, as Argo Rollouts says Paused
    assert f.status.current_step_index == 1
    assert on_version(f, "2.0") == 3
    assert f.max_in_flight <= 2
    f.spec = f.spec.model_copy(
        update={
            "strategy": f.spec.strategy.model_copy(
                update={"approved": Approval(version="2.0", through_step=1)}
            )
        }
    )
    f.run()
    assert f.phase == "Ready"
    assert on_version(f, "2.0") == 10
    assert f.max_in_flight <= 2
    reasons = [e.reason for e in f.events]
    assert reasons.count("StepCompleted") == 2


def test_canary_nodes_go_first() -> None:
    f = installed(
        6,
        steps=[{"setNodeCount": 1}, {"pause": {}}],
        canarySelector={"matchLabels": {"ring": "canary"}},
    )
    f.nodes[4].labels["ring"] = "canary"
    f.apply(f.plan())
    assert [n.name for n in f.nodes if n.desired and n.desired.version == "2.0"] == ["node-004"]


def test_a_timed_pause_passes_after_its_duration() -> None:
    f = installed(4, steps=[{"setNodeCount": 1}, {"pause": {"duration": "2m"}}])
    f.apply(f.plan())
    f.run(ticks=10)
    assert f.status.current_step_index == 1
    f.run(ticks=60)
    assert f.phase == "Ready"


def test_failures_over_the_threshold_abort_and_roll_back() -> None:
    f = installed(10)
    for node in f.nodes:
        node.broken = frozenset({"2.0/fp32", "2.0/fp16", "2.0/int8", "2.0/int8-npu"})
    f.apply(f.plan())
    f.run()
    assert f.phase == "RolledBack"
    assert f.status.abort_reason
    assert all(n.desired and n.desired.version == "1.0" for n in f.nodes)
    conditions = {c.type: c.status for c in f.status.conditions}
    assert conditions["Stalled"] == "True"
    assert conditions["Ready"] == "False"
    # Git stays the source of truth: planning again keeps the rollback until the spec changes.
    again = f.plan()
    assert again.status == f.status
    f.change_version("3.0")
    f.apply(f.plan())
    assert f.phase == "Progressing"
    assert f.status.stable_version == "1.0"


def test_a_failed_variant_falls_back_to_the_next_candidate() -> None:
    f = installed(3)
    f.nodes[2].broken = frozenset({"2.0/int8-npu"})
    f.apply(f.plan())
    f.run()
    assert f.phase == "Ready"
    npu = f.nodes[2].desired
    assert npu is not None
    assert (npu.variant, npu.excluded_variants) == ("fp32", ["int8-npu"])
    assert any(e.reason == "VariantFallback" for e in f.events)


def test_paused_asks_no_new_nodes() -> None:
    f = installed(5)
    f.spec = f.spec.model_copy(update={"paused": True})
    f.apply(f.plan())
    assert on_version(f, "2.0") == 0
    assert f.phase == "Paused"


def test_removed_nodes_lose_their_entry() -> None:
    f = installed(3)
    f.nodes[1].labels = {}
    plan = f.plan()
    assert plan.desired["node-001"] is None


def test_no_matching_nodes_is_ready_and_says_so() -> None:
    f = fleet(0)
    f.apply(f.plan())
    assert f.phase == "Ready"
    assert "no nodes match" in f.status.message


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=25),
    max_unavailable=st.integers(min_value=1, max_value=5),
    percent=st.integers(min_value=0, max_value=100),
    broken=st.sets(st.integers(min_value=0, max_value=24), max_size=6),
    delay=st.integers(min_value=1, max_value=60),
)
def test_planning_invariants(
    count: int, max_unavailable: int, percent: int, broken: set[int], delay: int
) -> None:
    """Never more than maxUnavailable in flight; planning again from the result changes
    nothing; the step index only moves forward unless the version changes."""
    f = installed(
        count,
        maxUnavailable=max_unavailable,
        steps=[{"setNodePercent": percent}, {"pause": {"duration": "30s"}}],
    )
    for i in broken:
        if i < count:
            f.nodes[i].broken = frozenset(f"2.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu"))
    f.max_in_flight = 0
    last_step = 0
    for _ in range(400):
        f.tick(seconds=15, delay=timedelta(seconds=delay))
        assert f.max_in_flight <= max_unavailable
        assert f.status.current_step_index >= last_step
        last_step = f.status.current_step_index
        again = f.plan()
        assert again.status == f.status
        assert all(again.desired[n.name] == n.desired for n in f.nodes if n.name in again.desired)
        assert again.events == ()
        if f.phase in ("Ready", "Degraded", "RolledBack"):
            break
    assert f.phase in ("Ready", "Degraded", "RolledBack")


def test_plan_is_deterministic() -> None:
    f = installed(8)
    assert f.plan() == f.plan()
    assert isinstance(f.plan(), planning.Plan)


def test_a_node_nothing_fits_is_reported_once_with_why() -> None:
    f = installed(3)
    f.nodes[0].hardware = hardware("cpu", memory=32 * MIB)
    plan = f.plan()
    f.apply(plan)
    warnings = [e for e in plan.events if e.reason == "NodeUnschedulable"]
    assert len(warnings) == 1
    assert "node-000: NoVariantFits" in warnings[0].message
    assert "DoesNotFit" in warnings[0].message
    assert f.status.worst_nodes[0].phase == "Unschedulable"
    assert not [e for e in f.plan().events if e.reason == "NodeUnschedulable"]


def test_nodes_keep_a_superseded_version_until_asked_for_the_new_one() -> None:
    f = installed(6, steps=[{"setNodeCount": 2}, {"pause": {}}])
    f.apply(f.plan())
    f.run(ticks=20)
    on_two = {n.name for n in f.nodes if n.desired and n.desired.version == "2.0"}
    assert len(on_two) == 2
    f.change_version("3.0")
    f.apply(f.plan())
    versions = {n.name: n.desired.version for n in f.nodes if n.desired}
    assert {versions[name] for name in on_two} <= {"2.0", "3.0"}
    assert "1.0" not in {versions[name] for name in on_two}


def test_entries_stay_when_the_stable_release_cannot_be_read() -> None:
    f = installed(4)
    del f.releases["1.0"]
    plan = f.plan()
    assert all(plan.desired[n.name] is not None for n in f.nodes)


def test_reverting_to_the_stable_version_skips_the_steps() -> None:
    f = installed(6, steps=[{"setNodeCount": 2}, {"pause": {}}])
    for node in f.nodes:
        node.broken = frozenset(f"2.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu"))
    f.apply(f.plan())
    f.run()
    assert f.phase == "RolledBack"
    f.change_version("1.0")
    f.apply(f.plan())
    f.run(ticks=20)
    assert f.phase == "Ready"
    assert f.status.stable_version == "1.0"
