"""An agent that reported and then went silent is NoAgent, as Kubernetes makes a Node whose
kubelet stopped posting status NotReady: after 4 missed heartbeats its node is held where it is
(reason AgentNotReporting, naming the node and when it was last heard from), it is not timed
out, tried with other variants or counted by the abort rules, and it rejoins when it reports."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.core import caching, planning, reports, summary
from edge_rollout.core.conditions import rfc3339
from edge_rollout.core.values import NodeInput, Selection
from tests.unit.core.fixtures import T0, Fleet, hardware
from tests.unit.core.test_planning import installed

GRACE = reports.MISSED_HEARTBEATS * reports.AGENT_HEARTBEAT


def entry(node: str) -> DesiredModel:
    return DesiredModel(
        name="ns/md", model="m", version="2.0", variant="fp32", store_url="http://s/"
    )


def selected(*names: str) -> Selection:
    nodes = tuple(NodeInput(n, {}, hardware(), desired=entry(n)) for n in names)
    return Selection(nodes, ("gone-node",), True)


@pytest.mark.parametrize(
    ("last", "held"),
    [
        pytest.param(None, False, id="never-reported"),
        pytest.param(T0 - timedelta(seconds=10), False, id="fresh"),
        pytest.param(T0 - GRACE, False, id="exactly-the-grace"),
        pytest.param(T0 - GRACE - timedelta(microseconds=1), True, id="just-over"),
        pytest.param(T0 - timedelta(days=3), True, id="days-ago"),
        pytest.param(T0 + timedelta(seconds=5), False, id="after-now"),
    ],
)
def test_a_node_is_held_once_its_agent_is_silent_for_the_grace(
    last: datetime | None, held: bool
) -> None:
    heard = reports.Heard({"c": T0} | ({} if last is None else {"a": last}))
    kept, outcomes = reports.hold_silent(selected("a", "b"), heard, T0)
    assert [o.node for o in outcomes] == (["a"] if held else [])
    assert [n.name for n in kept.nodes] == (["b"] if held else ["a", "b"])
    assert kept.removed == ("gone-node",)


def test_the_held_node_names_itself_and_when_it_was_last_heard_from() -> None:
    last = T0 - timedelta(minutes=7)
    heard = reports.Heard({"edge-7": last})
    _, (outcome,) = reports.hold_silent(selected("edge-7"), heard, T0)
    assert outcome.state == "unschedulable"
    assert outcome.desired == entry("edge-7")  # keeps its entry: nothing on it changes
    assert outcome.choice is not None
    assert outcome.choice.reason == reports.AGENT_NOT_REPORTING
    assert outcome.choice.message == (
        "node edge-7: its agent has sent no heartbeat since 2026-10-31T23:53:00Z, more than 2"
        " minutes ago (4 heartbeats of 30 s): NoAgent, held where it is until it reports again;"
        " start edge-rollout-agent on the node or see why it cannot reach the apiserver (kubectl"
        " get edgenode edge-7 shows its heartbeat)"
    )
    found = summary.report(outcome)
    assert (found.phase, found.reason, summary.kind(outcome)) == (
        "NoAgent",
        "AgentNotReporting",
        summary.NO_AGENT,
    )


def test_without_heartbeats_nothing_is_held() -> None:
    chosen = selected("a")
    assert reports.hold_silent(chosen, None, T0) == (chosen, ())
    assert reports.hold_silent(chosen, reports.Heard({}), T0) == (chosen, ())


def test_the_grace_is_four_of_the_agents_heartbeats() -> None:
    heard = reports.Heard({"a": T0 - timedelta(seconds=21)}, timedelta(seconds=5))
    assert heard.grace == timedelta(seconds=20)
    assert [o.node for o in reports.hold_silent(selected("a"), heard, T0)[1]] == ["a"]
    slow = reports.Heard(heard.last, timedelta(seconds=10))
    assert reports.hold_silent(selected("a"), slow, T0)[1] == ()


AGES = st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=3600)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(ages=AGES, heartbeat=st.integers(min_value=1, max_value=600))
def test_exactly_the_silent_nodes_are_held_and_the_rest_keep_their_order(
    ages: list[int | None], heartbeat: int
) -> None:
    names = [f"node-{i:03d}" for i in range(len(ages))]
    beats = {
        n: T0 - timedelta(seconds=a) for n, a in zip(names, ages, strict=True) if a is not None
    }
    heard = reports.Heard(beats, timedelta(seconds=heartbeat))
    kept, held = reports.hold_silent(selected(*names), heard, T0)
    silent = [n for n, a in zip(names, ages, strict=True) if a is not None and a > 4 * heartbeat]
    assert [o.node for o in held] == silent
    assert [n.name for n in kept.nodes] == [n for n in names if n not in silent]
    for outcome in held:
        assert outcome.state == "unschedulable"
        assert summary.kind(outcome) == summary.NO_AGENT
        assert outcome.desired == entry(outcome.node)
        assert outcome.choice is not None
        assert f"node {outcome.node}: " in outcome.choice.message
        assert f"no heartbeat since {rfc3339(beats[outcome.node])}" in outcome.choice.message


# --- over a rollout ---------------------------------------------------------------------------


def heartbeating(count: int, **strategy: object) -> Fleet:
    f = installed(count, **strategy)
    f.heartbeats = True
    for node in f.nodes:
        node.heard = f.now
    return f


def die_when_asked(f: Fleet, index: int) -> None:
    """The node's agent dies as soon as it is asked for 2.0 (before it reports on it)."""
    node = f.nodes[index]
    step = node.agent_step

    def dying(now: datetime, delay: timedelta) -> None:
        if node.desired is not None and node.desired.version == "2.0":
            node.gone = True
            return
        step(now, delay)

    node.agent_step = dying  # type: ignore[method-assign]


def test_an_agent_that_dies_mid_rollout_is_no_agent_not_timed_out() -> None:
    f = heartbeating(4)
    die_when_asked(f, 1)
    f.apply(f.plan())
    f.run(ticks=200, seconds=10)
    assert not [e for e in f.events if e.reason == "VariantFallback"]
    assert f.phase == "Degraded", f.status.message
    why = {c.type: (c.status, c.reason) for c in f.status.conditions}
    assert why["Degraded"] == ("True", "NoAgent")
    assert why["Ready"] == ("True", "NoAgent")  # every other node runs 2.0
    (worst,) = f.status.worst_nodes
    assert (worst.node, worst.phase, worst.reason) == ("node-001", "NoAgent", "AgentNotReporting")
    assert "has sent no heartbeat since" in worst.message
    assert "3/4 nodes on 2.0, 1 failed (1 with no agent)" in f.status.message
    assert f.nodes[1].desired is not None
    assert f.nodes[1].desired.excluded_variants == []  # no variant blamed for a dead agent


def test_the_agent_coming_back_finishes_the_rollout() -> None:
    f = heartbeating(4)
    die_when_asked(f, 1)
    f.apply(f.plan())
    f.run(ticks=200, seconds=10)
    node = f.nodes[1]
    node.gone = False
    del node.agent_step  # the instance's dying step: back to SimNode's
    f.run(ticks=20)
    assert f.phase == "Ready", f.status.message
    assert f.status.worst_nodes == []


def test_dead_agents_in_the_canary_wave_do_not_abort_the_rollout() -> None:
    """The abort criteria (50% of at least 2 finished nodes) count failures of the version; a
    wave whose agents died says nothing about it: the rollout goes on to the other nodes."""
    f = heartbeating(6)
    die_when_asked(f, 0)
    die_when_asked(f, 1)
    f.apply(f.plan())
    f.run(ticks=300, seconds=10)
    assert not f.status.abort_reason
    assert f.phase == "Degraded", f.status.message
    assert sorted(w.node for w in f.status.worst_nodes) == ["node-000", "node-001"]
    assert f.status.counts.succeeded == 4


@settings(max_examples=25, deadline=None)
@given(
    dead=st.sets(st.integers(min_value=0, max_value=5), max_size=6),
    when=st.integers(min_value=0, max_value=40),
)
def test_a_silent_node_is_left_alone_and_never_counts_against_the_version(
    dead: set[int], when: int
) -> None:
    """Agents die at a random tick (before, while or after their node is asked): every plan
    leaves a held node's entry as it is, the cache changes no decision, nothing is aborted or
    tried with another variant, and in the end exactly the dead nodes are NoAgent."""
    f = heartbeating(6)
    f.apply(f.plan())
    cache = caching.PlannerCache()
    for tick in range(60):
        if tick == when:
            for i in dead:
                f.nodes[i].gone = True
        f.now += timedelta(seconds=10)
        for node in f.nodes:
            if not node.gone:
                node.agent_step(f.now, timedelta(seconds=15))
                node.heard = f.now
        plan = f.plan()
        deployment = planning.Deployment("ns/md", f.generation, f.spec, f.status)
        nodes = [n.as_input() for n in f.nodes]
        cached = planning.plan_rollout(
            deployment, f.releases, nodes, f.now, cache=cache, heard=f.heard()
        )
        assert cached == plan
        cutoff = f.now - GRACE
        for node in f.nodes:
            if node.heard is not None and node.heard < cutoff:
                assert plan.desired.get(node.name, node.desired) == node.desired
        f.apply(plan)
    dead_names = {f.nodes[i].name for i in dead}
    assert not f.status.abort_reason
    assert not [e for e in f.events if e.reason in ("VariantFallback", "RolloutAborted")]
    assert worst_of(f) == dict.fromkeys(dead_names, ("NoAgent", "AgentNotReporting"))
    assert f.status.counts.succeeded == 6 - len(dead)
    ready = next(c for c in f.status.conditions if c.type == "Ready")
    assert (ready.status == "True") == (len(dead) < 6)
    assert f.phase == ("Degraded" if dead else "Ready")


def worst_of(f: Fleet) -> dict[str, tuple[str, str]]:
    return {w.node: (w.phase, w.reason) for w in f.status.worst_nodes}
