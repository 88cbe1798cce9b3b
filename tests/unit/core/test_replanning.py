"""Replanning from the last plan: the planner's cache (`caching.PlannerCache`: the nodes' order,
the outcomes that last, the tally, the entries and choices, the facts per node) gives exactly the
plan that planning without a cache gives from fresh NodeInputs, whatever happens between two
plans, including the deployment being forgotten (deleted) or evicted."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge_rollout.api.common import LabelSelector
from edge_rollout.core import caching, outcomes, planning
from edge_rollout.core import fleet as fleet_core
from tests.unit.core.fixtures import Fleet, fleet, release, variant

STEPS = [{"setNodePercent": 30}, {"pause": {"duration": "1m"}}, {"setNodePercent": 60}]
CANARY = {"matchLabels": {"ring": "canary"}}
MOVES = st.sampled_from(
    ["tick"] * 12
    + ["back", "replace", "shuffle", "drop", "canary", "unselect", "pause", "min-ready"]
    + ["release", "break", "rollback", "abort-policy", "forget", "evict"]
)
"""Mostly agents reporting as time passes, so that nodes stay Ready, time out, fail."""
KEY = "ns/md"


class Gatherer:
    """Hands the planner the same NodeInput for a node until the node changes (as
    `inputs.node_inputs` does), or a new equal one when told to."""

    def __init__(self, f: Fleet) -> None:
        self.f = f
        self.cache = caching.PlannerCache(limit=2)
        self.inputs: dict[str, planning.NodeInput] = {}
        self.order = [n.name for n in f.nodes]

    def gather(self, replace: frozenset[int] = frozenset()) -> list[planning.NodeInput]:
        by_name = {n.name: n for n in self.f.nodes}
        for i, name in enumerate(self.order):
            fresh = by_name[name].as_input()
            if self.inputs.get(name) != fresh or i in replace:
                self.inputs[name] = fresh
        return [self.inputs[name] for name in self.order]


def plans_alike(
    f: Fleet, nodes: list[planning.NodeInput], cache: caching.PlannerCache
) -> planning.Plan:
    deployment = planning.Deployment(KEY, f.generation, f.spec, f.status)
    remembered = planning.plan_rollout(deployment, f.releases, nodes, f.now, cache=cache)
    fresh = [dataclasses.replace(n) for n in nodes]
    expected = planning.plan_rollout(deployment, f.releases, fresh, f.now)
    assert remembered == expected
    assert list(remembered.desired) == list(expected.desired)
    assert list(remembered.choices) == list(expected.choices)
    return remembered


def move(f: Fleet, g: Gatherer, kind: str, n: int) -> frozenset[int]:
    """Change the world between two plans; returns the positions to hand over as new objects."""
    node = f.nodes[n % len(f.nodes)]
    if kind == "tick":
        f.now += timedelta(seconds=5 + n % 30)
        for each in f.nodes:
            each.agent_step(f.now, timedelta(seconds=15))
    elif kind == "back":
        f.now -= timedelta(seconds=n % 120)
    elif kind == "replace":
        return frozenset(range(0, len(g.order), 1 + n % 3))
    elif kind == "shuffle":
        g.order = g.order[n % len(g.order) :] + g.order[: n % len(g.order)]
    elif kind == "drop" and len(g.order) > 1:
        g.order = [name for name in g.order if name != node.name] + [node.name][: n % 2]
    elif kind == "canary":
        node.labels = {**node.labels, "ring": "canary"}
    elif kind == "unselect":
        node.labels = {"edge": "false"} if node.labels.get("edge") == "true" else {"edge": "true"}
    elif kind in ("forget", "evict"):
        change_cache(g.cache, kind)
    else:
        change_spec(f, kind, n)
    return frozenset()


def change_cache(cache: caching.PlannerCache, kind: str) -> None:
    if kind == "forget":  # the ModelDeployment deleted (and created again)
        cache.forget(KEY)
        assert not cache.holds(KEY)
    else:  # two deployments planned since: the least recently planned goes (limit 2)
        for other in ("ns/other-1", "ns/other-2"):
            cache.deployment(other)
        assert KEY not in cache.deployments()


def change_spec(f: Fleet, kind: str, n: int) -> None:
    strategy = f.spec.strategy
    if kind == "pause":
        f.spec = f.spec.model_copy(update={"paused": not f.spec.paused})
    elif kind == "min-ready":
        strategy = strategy.model_copy(update={"min_ready_seconds": n % 90})
        f.spec = f.spec.model_copy(update={"strategy": strategy})
    elif kind == "release":
        f.releases = {**f.releases, "2.0": release("2.0", variant("fp32"), variant("int8"))}
    elif kind == "break":
        f.nodes[n % len(f.nodes)].broken = frozenset({"2.0/fp32", "2.0/fp16", "2.0/int8-npu"})
    elif kind == "rollback":
        f.change_version("1.0" if f.spec.model.version == "2.0" else "2.0")
    elif kind == "abort-policy":
        policy = "Pause" if f.spec.abort.failure_handling_policy == "Rollback" else "Rollback"
        abort = f.spec.abort.model_copy(update={"failure_handling_policy": policy})
        f.spec = f.spec.model_copy(update={"abort": abort})


@settings(max_examples=60, deadline=None)
@example(count=5, canary=False, moves=[("tick", 25)] * 12)
@example(count=7, canary=True, moves=[("break", 1), *[("tick", 29)] * 20, ("back", 100)])
@given(
    count=st.integers(min_value=1, max_value=14),
    canary=st.booleans(),
    moves=st.lists(st.tuples(MOVES, st.integers(0, 1000)), min_size=1, max_size=40),
)
def test_replanning_from_memos_plans_like_a_fresh_planner(
    count: int, canary: bool, moves: list[tuple[str, int]]
) -> None:
    f = fleet(count, steps=STEPS, maxUnavailable=2, minReadySeconds=30)
    if canary:
        chosen = f.spec.strategy.model_copy(
            update={"canary_selector": LabelSelector.model_validate(CANARY)}
        )
        f.spec = f.spec.model_copy(update={"strategy": chosen})
    for i in range(0, count, 5):
        f.nodes[i].labels = {**f.nodes[i].labels, "ring": "canary"}
    f.apply(f.plan())
    f.run()
    f.change_version("2.0")
    g = Gatherer(f)
    for kind, n in moves:
        replace = move(f, g, kind, n)
        f.apply(plans_alike(f, g.gather(replace), g.cache))


def test_tallies_add_and_subtract_like_counting_again() -> None:
    f = fleet(9, steps=STEPS, maxUnavailable=3, minReadySeconds=0)
    f.apply(f.plan())
    f.run()
    f.nodes[0].broken = frozenset({"2.0/fp32"})
    f.change_version("2.0")
    for _ in range(4):
        f.tick(seconds=20)
    nodes = [n.as_input() for n in f.nodes]
    deployment = planning.Deployment("ns/md", f.generation, f.spec, f.status)
    rollout = planning._rollout_state(deployment, f.now)
    planner = outcomes.NodePlanner(deployment, rollout, f.releases["2.0"], f.releases["1.0"], f.now)
    judged = [planner.outcome(n) for n in nodes]
    whole = fleet_core.tally(judged, "2.0")
    part = fleet_core.tally(judged[:4], "2.0").plus(judged[4:])
    assert part == whole
    assert whole.minus(judged[4:]) == fleet_core.tally(judged[:4], "2.0")
    assert {o.state for o in judged} >= {"updated", "old"}
