"""The agent schedules on a clock that never jumps (issue 14.5): a wall clock stepped back keeps
heartbeats coming and backoff as long as it says, in elapsed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout_agent import loop, policy
from edge_rollout_agent.fetching import ChunkSource

from .storefixture import ScratchStore
from .test_loop import FakeApi, publish, set_spec


class Clocks:
    """A wall clock and a monotonic one, moved by hand."""

    def __init__(self) -> None:
        self.wall = datetime(2026, 3, 6, 12, tzinfo=UTC)
        self.mono = 1000.0

    def elapse(self, seconds: float, wall_jump: timedelta = timedelta(0)) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds) + wall_jump


def agent_with(tmp_path: Path, clocks: Clocks) -> tuple[loop.Agent, FakeApi, ScratchStore]:
    store = ScratchStore(tmp_path / "store")
    api = FakeApi()

    def open_source(entry: DesiredModel) -> ChunkSource:
        return store.reader()

    settings = loop.Settings(node="n1", data_dir=tmp_path / "data", runs=2)
    agent = loop.Agent(
        settings, api, open_source, clock=lambda: clocks.wall, ticks=lambda: clocks.mono
    )
    return agent, api, store


def test_heartbeats_go_on_when_the_wall_clock_steps_back(tmp_path: Path) -> None:
    clocks = Clocks()
    agent, api, store = agent_with(tmp_path, clocks)
    set_spec(agent, publish(store, tmp_path, "1.0", 1))
    agent.step()
    count = len(api.statuses)
    clocks.elapse(agent.settings.heartbeat, wall_jump=-timedelta(hours=1))
    agent.step()
    assert len(api.statuses) == count + 1
    clocks.elapse(5, wall_jump=timedelta(days=1))  # a jump forward is no heartbeat either
    agent.step()
    assert len(api.statuses) == count + 1


def test_backoff_lasts_its_elapsed_time_across_a_wall_clock_jump(tmp_path: Path) -> None:
    clocks = Clocks()
    agent, _, _ = agent_with(tmp_path, clocks)
    failure = policy.Failure("1.0", "fp32", "StoreUnreachable", 1, clocks.wall)
    agent.failures["ns/m"] = failure
    due = policy.retry_at(failure, agent.settings.limits)
    assert due is not None
    wait = due - clocks.wall
    clocks.elapse(1, wall_jump=-timedelta(hours=3))
    agent.follow_clock_jumps()
    moved = policy.retry_at(agent.failures["ns/m"], agent.settings.limits)
    assert moved is not None
    assert moved - clocks.wall == wait - timedelta(seconds=1)


def test_a_fake_wall_clock_alone_drives_scheduling_too(tmp_path: Path) -> None:
    wall = [datetime(2026, 3, 6, 12, tzinfo=UTC)]
    store = ScratchStore(tmp_path / "store")

    def open_source(entry: DesiredModel) -> ChunkSource:
        return store.reader()

    agent = loop.Agent(
        loop.Settings(node="n1", data_dir=tmp_path / "data"),
        FakeApi(),
        open_source,
        clock=lambda: wall[0],
    )
    agent.last_patch = agent.ticks()
    wall[0] += timedelta(seconds=agent.settings.heartbeat)
    assert agent.heartbeat_due()
