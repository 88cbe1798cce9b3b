"""The planner's facts per node (`memo.NodeMemo`, in the caller's `caching.PlannerCache`): the
same NodeInput objects planned again with the same cache (as the operator does between replans)
give exactly the plan that fresh objects without a cache give, whatever `now`, spec or release
comes next."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.core import caching, planning
from tests.unit.core.fixtures import Fleet, fleet, release, variant

STEPS = [{"setNodePercent": 40}, {"pause": {"duration": "1m"}}]


def mid_rollout(count: int, ticks: int, broken: bool = False) -> Fleet:
    """A fleet that installed 1.0 and is `ticks` into rolling out 2.0 (with `broken`, one node
    fails its variant and falls back, or the rollout aborts)."""
    f = fleet(count, steps=STEPS, maxUnavailable=2, minReadySeconds=30)
    f.apply(f.plan())
    f.run()
    f.change_version("2.0")
    if broken:
        f.nodes[0].broken = frozenset({"2.0/fp32"})
    for _ in range(ticks):
        f.tick(seconds=10, delay=timedelta(seconds=20))
    return f


def fresh(nodes: list[planning.NodeInput]) -> list[planning.NodeInput]:
    """Equal NodeInputs with nothing remembered."""
    return [dataclasses.replace(n) for n in nodes]


@settings(max_examples=30, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=12),
    ticks=st.integers(min_value=0, max_value=30),
    broken=st.booleans(),
    moves=st.lists(
        st.tuples(
            st.integers(min_value=-600, max_value=600),
            st.sampled_from(["none", "min-ready", "prefer", "release", "store"]),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_reused_node_inputs_plan_like_fresh_ones(
    count: int, ticks: int, broken: bool, moves: list[tuple[int, str]]
) -> None:
    f = mid_rollout(count, ticks, broken)
    kept = [n.as_input() for n in f.nodes]
    cache = caching.PlannerCache()
    for seconds, change in moves:
        f.now += timedelta(seconds=seconds)  # also backwards: the memo must not assume order
        if change == "min-ready":
            strategy = f.spec.strategy.model_copy(update={"min_ready_seconds": seconds % 90})
            f.spec = f.spec.model_copy(update={"strategy": strategy})
        elif change == "prefer":
            policy = f.spec.selection.model_copy(update={"prefer": "size"})
            f.spec = f.spec.model_copy(update={"selection": policy})
        elif change == "release":
            f.releases = {**f.releases, "2.0": release("2.0", variant("fp32"), variant("int8"))}
        elif change == "store":
            store = f.spec.model.store.model_copy(update={"url": f"http://127.0.0.1:{seconds}/s"})
            model = f.spec.model.model_copy(update={"store": store})
            f.spec = f.spec.model_copy(update={"model": model})
        deployment = planning.Deployment("ns/md", f.generation, f.spec, f.status)
        reused = planning.plan_rollout(deployment, f.releases, kept, f.now, cache=cache)
        expected = planning.plan_rollout(deployment, f.releases, fresh(kept), f.now)
        assert reused == expected


def test_what_the_planner_remembers_is_in_the_cache_not_on_the_node_inputs() -> None:
    f = mid_rollout(3, 5)
    node = f.nodes[1].as_input()
    cache = caching.PlannerCache()
    deployment = planning.Deployment("ns/md", f.generation, f.spec, f.status)
    planning.plan_rollout(deployment, f.releases, [node], f.now, cache=cache)
    memo = cache.deployment("ns/md")
    assert memo.nodes.facts(node), "the facts worked out about the node are in the cache"
    assert not memo.nodes.facts(dataclasses.replace(node)), "an equal new object starts afresh"
    assert dataclasses.fields(node) == dataclasses.fields(planning.NodeInput)
    assert all(f.compare for f in dataclasses.fields(node)), "a NodeInput is all value"
