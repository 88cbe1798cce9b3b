"""The random chaos schedule (bench/chaos/schedule.py): one seed, one schedule, every time; the
faults asked for, bounded delays and holds, a checkpoint after every group and at the end."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.chaos import schedule
from bench.chaos.schedule import CHECKPOINT, FAULTS, HELD, ROLLOUT, TARGETED, make_schedule

seeds = st.integers(min_value=0, max_value=2**32)


@settings(max_examples=50, deadline=None)
@given(seed=seeds, faults=st.integers(1, 60), nodes=st.integers(1, 5), versions=st.integers(2, 4))
def test_the_same_seed_gives_the_same_schedule(
    seed: int, faults: int, nodes: int, versions: int
) -> None:
    first = make_schedule(seed, faults, nodes, versions)
    again = make_schedule(seed, faults, nodes, versions)
    assert first == again
    assert schedule.fingerprint(first) == schedule.fingerprint(again)


def test_another_seed_gives_another_schedule() -> None:
    prints = {schedule.fingerprint(make_schedule(seed, 20, 3, 3)) for seed in range(20)}
    assert len(prints) == 20


@settings(max_examples=50, deadline=None)
@given(seed=seeds, faults=st.integers(1, 60), nodes=st.integers(1, 5), versions=st.integers(2, 4),
       every=st.integers(1, 12))  # fmt: skip
def test_counts_targets_delays_and_checkpoints_are_bounded(
    seed: int, faults: int, nodes: int, versions: int, every: int
) -> None:
    events = make_schedule(seed, faults, nodes, versions, per_checkpoint=every)
    assert schedule.fault_count(events) == faults
    assert [e.index for e in events] == list(range(len(events)))
    assert events[-1].kind == CHECKPOINT
    checkpoints = sum(e.kind == CHECKPOINT for e in events)
    assert checkpoints == -(-faults // every)
    for event in events:
        assert event.kind in (*FAULTS, ROLLOUT, CHECKPOINT)
        assert 0.0 <= event.delay <= 3.0
        assert (0 <= event.target < nodes) == (event.kind in TARGETED)
        assert (event.hold > 0) == (event.kind in HELD)
        assert event.hold <= 8.0
        assert (0 <= event.version < versions) == (event.kind in (ROLLOUT, "abort"))
        assert (event.skew != 0) == (event.kind == "clock-skew")


def test_only_the_kinds_asked_for_and_all_of_them_over_a_long_run() -> None:
    kinds = ("agent-kill", "relabel")
    events = make_schedule(3, 100, 3, 3, kinds=kinds)
    assert {e.kind for e in events} == {*kinds, ROLLOUT, CHECKPOINT}
    every = Counter(e.kind for e in make_schedule(3, 200, 3, 3))
    assert all(every[kind] >= 5 for kind in FAULTS), every


def test_a_known_seed_keeps_its_schedule() -> None:
    """Pinned: a change to the drawing breaks replays of seeds printed by earlier runs."""
    events = make_schedule(1, 6, 3, 3)
    assert [e.kind for e in events] == [
        ROLLOUT, "edgenode-delete", ROLLOUT, "operator-kill", "operator-kill", "disk-full",
        ROLLOUT, "operator-kill", ROLLOUT, "store-down", CHECKPOINT,
    ]  # fmt: skip
    assert schedule.fingerprint(events) == "cfb476a185334a88"


@pytest.mark.parametrize(
    "args", [(0, 0, 3, 3), (0, 5, 0, 3), (0, 5, 3, 1), (0, 5, 3, 3, ()), (0, 5, 3, 3, ("x",))]
)
def test_impossible_requests_are_refused(args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match=r"need|unknown"):
        make_schedule(*args)  # type: ignore[arg-type]


def test_describe_names_the_node_version_and_hold() -> None:
    event = schedule.Event(4, "relabel", 1.5, target=1, hold=2.25)
    assert event.describe(["a", "b"], ["1.0"]) == "#4 relabel after 1.50 s node=b hold=2.25 s"
