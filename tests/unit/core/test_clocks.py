"""Soak on the operator's clock whatever the node's clock says (issue 14.5): reported times moved
by the node's skew (measured from its heartbeat) give the plan an agent with a true clock gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.api.edgenode import EdgeNode, EdgeNodeStatus, ModelStatus
from edge_rollout.core import clocks
from edge_rollout.core.conditions import rfc3339
from tests.unit.core.fixtures import Fleet
from tests.unit.core.test_planning import installed

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
SKEWS = st.integers(min_value=-86_400 * 2, max_value=600).map(lambda s: timedelta(seconds=s))


def as_agent_reports(model: ModelStatus, skew: timedelta, now: datetime) -> EdgeNode:
    """The EdgeNode an agent whose clock runs `skew` ahead sends at `now` (operator clock)."""
    moved = {
        name: rfc3339(datetime.fromisoformat(value) + skew)
        for name in ("ready_since", "last_transition_time")
        if (value := getattr(model, name))
    }
    status = EdgeNodeStatus(
        heartbeat_time=rfc3339(now + skew), models=[model.model_copy(update=moved)]
    )
    return EdgeNode(status=status)


def soaking(min_ready: int) -> Fleet:
    """10 nodes moving to 2.0 with minReadySeconds, ticked until the first wave is Ready."""
    f = installed(10, maxUnavailable=3, minReadySeconds=min_ready)
    for _ in range(20):
        f.tick(seconds=5, delay=timedelta(seconds=10))
        if any(
            n.reported and n.reported.ready_since and n.reported.version == "2.0" for n in f.nodes
        ):
            return f
    raise AssertionError("no node became Ready on 2.0")


@settings(max_examples=60, deadline=None)
@given(
    skew=SKEWS,
    waited=st.integers(min_value=0, max_value=600),
    min_ready=st.sampled_from([0, 60, 300]),
)
def test_soak_is_judged_on_the_operator_clock(skew: timedelta, waited: int, min_ready: int) -> None:
    f = soaking(min_ready)
    f.now += timedelta(seconds=waited)
    truthful = f.plan()
    for node in f.nodes:
        if node.reported is not None:
            sent = as_agent_reports(node.reported, skew, f.now)
            node.reported = clocks.on_operator_clock(sent, f.now).status.models[0]
    skewed = f.plan()
    assert skewed.status.counts == truthful.status.counts
    assert skewed.status.current_step_index == truthful.status.current_step_index
    assert skewed.desired == truthful.desired


@given(skew=SKEWS, ready_ago=st.integers(min_value=0, max_value=3600))
def test_reported_times_come_back_to_the_operator_clock(skew: timedelta, ready_ago: int) -> None:
    model = ModelStatus(
        name="ns/m", phase="Ready", ready_since=rfc3339(T0 - timedelta(seconds=ready_ago))
    )
    moved = clocks.on_operator_clock(as_agent_reports(model, skew, T0), T0).status.models[0]
    assert moved.ready_since == model.ready_since
    assert clocks.skew(as_agent_reports(model, skew, T0), T0) == skew


def test_a_time_after_the_operator_saw_the_report_is_clamped() -> None:
    model = ModelStatus(name="ns/m", phase="Ready", ready_since=rfc3339(T0 + timedelta(hours=1)))
    node = EdgeNode(status=EdgeNodeStatus(heartbeat_time=rfc3339(T0), models=[model]))
    assert clocks.on_operator_clock(node, T0).status.models[0].ready_since == rfc3339(T0)


def test_skew_beyond_two_minutes_is_warned_about_either_way() -> None:
    assert clocks.skew_warning("n", timedelta(seconds=119)) is None
    assert clocks.skew_warning("n", None) is None
    ahead = clocks.skew_warning("n", timedelta(minutes=9))
    behind = clocks.skew_warning("n", timedelta(minutes=-40))
    assert ahead is not None
    assert "9 minutes ahead of" in ahead
    assert behind is not None
    assert "40 minutes behind" in behind
    assert "NTP" in behind


def test_only_a_heartbeat_seen_arriving_measures_the_clock() -> None:
    """A heartbeat found when the operator starts (or first meets a node) may be an hour old
    from a dead agent: not a clock an hour behind. The next one, seen replacing it, is."""
    seen = clocks.Sightings()
    stale = rfc3339(T0 - timedelta(hours=1))
    first = seen.see("edge-1", stale, T0)
    assert first == clocks.Sighting(T0, arrived=False)
    assert seen.see("edge-1", stale, T0 + timedelta(seconds=40)) == first  # a spec write
    fresh = seen.see("edge-1", rfc3339(T0 + timedelta(seconds=59)), T0 + timedelta(seconds=60))
    assert fresh == clocks.Sighting(T0 + timedelta(seconds=60), arrived=True)
    assert seen.see("edge-2", stale, T0).arrived is False  # each node on its own
    seen.clear()
    assert seen.see("edge-1", stale, T0 + timedelta(seconds=90)).arrived is False
