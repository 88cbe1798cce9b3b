"""The planner's one cache (`caching.PlannerCache`): gathering and planning through it, for many
deployments over a shared fleet, give the plans that planning without it gives; a deleted
deployment is forgotten at once, and the least recently planned go past the limit, so the
cache does not grow with deployments that are gone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.planner import run as planner_bench
from edge_rollout.api.edgenode import EdgeNode
from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.core import caching, inputs, planning
from tests.unit.core.fixtures import GIB, release, spec
from tests.unit.core.test_inputs import edgenode

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
KEYS = [f"ns/d{i}" for i in range(4)]


def plan(
    key: str,
    nodes: dict[str, inputs.NodeInfo],
    edgenodes: dict[str, EdgeNode],
    cache: caching.PlannerCache | None,
    seconds: int = 0,
) -> planning.Plan:
    md = spec("1.0")
    found = inputs.node_inputs(key, 0, False, nodes, edgenodes, md.node_selector, cache)
    deployment = planning.Deployment(key, 1, md, ModelDeploymentStatus())
    now = NOW + timedelta(seconds=seconds)
    return planning.plan_rollout(deployment, {"1.0": release("1.0")}, found, now, cache=cache)


def fleet(size: int) -> tuple[dict[str, inputs.NodeInfo], dict[str, EdgeNode]]:
    nodes = {f"n{i}": inputs.NodeInfo({"edge": "true"}, 8 * GIB) for i in range(size)}
    edgenodes = {
        name: edgenode(name, [(k, i % 3, GIB // 4) for k in KEYS[: i % 3]], True)
        for i, name in enumerate(nodes)
    }
    return nodes, edgenodes


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 6),
    steps=st.lists(
        st.tuples(st.sampled_from(["plan", "forget", "heartbeat"]), st.sampled_from(KEYS)),
        min_size=1,
        max_size=20,
    ),
    limit=st.integers(1, 5),
)
def test_plans_through_one_cache_equal_plans_without_one(
    size: int, steps: list[tuple[str, str]], limit: int
) -> None:
    nodes, edgenodes = fleet(size)
    cache = caching.PlannerCache(limit=limit)
    for i, (step, key) in enumerate(steps):
        if step == "forget":
            cache.forget(key)
            assert not cache.holds(key)
        elif step == "heartbeat":  # a new object for one node, saying the same
            name = f"n{i % size}"
            edgenodes[name] = EdgeNode.model_validate(edgenodes[name].model_dump(by_alias=True))
        else:
            assert plan(key, nodes, edgenodes, cache, i) == plan(key, nodes, edgenodes, None, i)
        assert len(cache.deployments()) <= limit


def test_a_deleted_deployment_leaves_nothing_in_the_cache() -> None:
    nodes, edgenodes = fleet(5)
    cache = caching.PlannerCache()
    for key in KEYS:
        plan(key, nodes, edgenodes, cache)
    assert all(cache.holds(key) for key in KEYS)
    assert cache.views.holding("ns/d1") == 5
    cache.forget("ns/d1")
    assert not cache.holds("ns/d1")
    assert cache.views.holding("ns/d1") == 0
    assert cache.deployments() == ["ns/d0", "ns/d2", "ns/d3"]
    assert cache.views.holding("ns/d2") == 5


def test_the_least_recently_planned_deployment_goes_first_past_the_limit() -> None:
    nodes, edgenodes = fleet(3)
    cache = caching.PlannerCache(limit=2)
    for key in ("ns/d0", "ns/d1", "ns/d0", "ns/d2"):
        plan(key, nodes, edgenodes, cache)
    assert cache.deployments() == ["ns/d0", "ns/d2"]
    assert not cache.holds("ns/d1")


def test_nodes_that_left_the_fleet_are_forgotten() -> None:
    nodes, edgenodes = fleet(1100)
    cache = caching.PlannerCache()
    plan("ns/d0", nodes, edgenodes, cache)
    assert len(cache.views) == 1100
    small = {name: nodes[name] for name in list(nodes)[:10]}
    plan("ns/d0", small, {name: edgenodes[name] for name in small}, cache)
    assert len(cache.views) == 10
    assert len(cache.deployment("ns/d0").nodes) == 10


def test_the_bench_fleet_is_planned_the_same_with_and_without_the_cache() -> None:
    """bench/planner's fleet (rolling out, failing, falling back; written and heartbeating
    between replans): every plan of the three replans is the same either way."""
    assert planner_bench.measure(120, 9).digest == planner_bench.measure(120, 9, False).digest
