"""The agent loop against a fake API server and a real directory store (no sockets)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.api.edgenode import DesiredModel, EdgeNode, EdgeNodeSpec, EdgeNodeStatus
from edge_rollout_agent import loop, reporting
from edge_rollout_agent.fetching import ChunkSource

from .models import golden_for, linear_model, random_weights
from .storefixture import ScratchStore


class FakeApi:
    def __init__(self) -> None:
        self.node = EdgeNode(metadata={"name": "n1", "resourceVersion": "1"})
        self.statuses: list[EdgeNodeStatus] = []
        self.down = False

    def ensure(self) -> EdgeNode:
        return self.node

    def patch_status(self, status: EdgeNodeStatus) -> None:
        if self.down:
            raise ConnectionError("apiserver down")
        self.statuses.append(status)

    def watch(self, resource_version: str, timeout_seconds: int = 300) -> Iterator[EdgeNode]:
        return iter(())


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 6, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(tmp_path: Path) -> tuple[loop.Agent, FakeApi, ScratchStore, Clock]:
    store = ScratchStore(tmp_path / "store")
    api, clock = FakeApi(), Clock()
    settings = loop.Settings(node="n1", data_dir=tmp_path / "data", runs=2)

    def open_source(entry: DesiredModel) -> ChunkSource:
        return store.reader()

    agent = loop.Agent(settings, api, open_source, clock=clock)
    return agent, api, store, clock


def publish(store: ScratchStore, tmp_path: Path, version: str, seed: int) -> dict[str, Any]:
    weights, bias = random_weights(32, 32, seed=seed)
    data = linear_model(tmp_path / f"{version}.onnx", weights, bias)
    return store.desired(store.publish(data, version, golden=golden_for(weights, bias)),
                         keepVersion="1.0")  # fmt: skip


def set_spec(agent: loop.Agent, *entries: dict[str, Any]) -> None:
    agent.set_spec(EdgeNodeSpec.model_validate({"models": list(entries)}), connected=True)


def test_install_update_and_rollback_are_reported(world: Any, tmp_path: Path) -> None:
    agent, api, store, clock = world
    v1, v2 = publish(store, tmp_path, "1.0", 1), publish(store, tmp_path, "2.0", 2)
    set_spec(agent, v1)
    agent.step()
    (model,) = api.statuses[-1].models
    assert (model.phase, model.active_version) == ("Ready", "1.0")
    assert model.bytes_fetched > 0
    assert model.latency is not None
    assert api.statuses[-1].conditions[0].status == "True"
    set_spec(agent, v2)
    clock.now += timedelta(minutes=1)
    agent.step()
    assert api.statuses[-1].models[0].active_version == "2.0"
    set_spec(agent, v1)
    agent.step()
    (model,) = api.statuses[-1].models
    assert (model.phase, model.active_version, model.bytes_fetched) == ("RolledBack", "1.0", 0)
    phases = [s.models[0].phase for s in api.statuses if s.models]
    assert "Downloading" in phases or "Verifying" in phases


def test_only_changes_and_heartbeats_are_patched(world: Any, tmp_path: Path) -> None:
    agent, api, store, clock = world
    set_spec(agent, publish(store, tmp_path, "1.0", 1))
    agent.step()
    count = len(api.statuses)
    clock.now += timedelta(seconds=5)
    agent.step()
    assert len(api.statuses) == count
    clock.now += timedelta(seconds=agent.settings.heartbeat)
    agent.step()
    assert len(api.statuses) == count + 1


def test_keeps_working_while_the_apiserver_is_down(world: Any, tmp_path: Path) -> None:
    agent, api, store, clock = world
    set_spec(agent, publish(store, tmp_path, "1.0", 1))
    api.down = True
    agent.step()
    assert api.statuses == []
    assert (agent.settings.data_dir / "models/ns/dep/current/model.onnx").exists()
    api.down = False
    clock.now += timedelta(seconds=1)
    agent.step()
    assert api.statuses[-1].models[0].phase == "Ready"


def test_spec_is_cached_for_restarts_without_the_apiserver(world: Any, tmp_path: Path) -> None:
    agent, api, store, _ = world
    set_spec(agent, publish(store, tmp_path, "1.0", 1))
    again = loop.Agent(agent.settings, api, agent.open_source)
    assert [m.version for m in again.spec.models] == ["1.0"]


def test_a_failed_install_is_reported_with_its_reason(world: Any, tmp_path: Path) -> None:
    agent, api, store, _ = world
    entry = publish(store, tmp_path, "1.0", 1)
    entry["manifestDigest"] = "sha256:" + "0" * 64
    set_spec(agent, entry)
    agent.step()
    (model,) = api.statuses[-1].models
    assert model.phase == "Failed"
    assert model.last_error is not None
    assert model.last_error.reason == "NotFound"
    assert api.statuses[-1].conditions[0].reason == "ModelFailed"


def test_defer_file_holds_updates(world: Any, tmp_path: Path) -> None:
    agent, api, store, _ = world
    (agent.settings.data_dir).mkdir(parents=True, exist_ok=True)
    (agent.settings.data_dir / "defer").write_text("")
    set_spec(agent, publish(store, tmp_path, "1.0", 1))
    agent.step()
    assert api.statuses[-1].models[0].phase == "Pending"
    (agent.settings.data_dir / "defer").unlink()
    agent.step()
    assert api.statuses[-1].models[0].phase == "Ready"


def test_transition_times() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = reporting.transition(None, "a/b", t0, phase="Downloading")
    same = reporting.transition(first, "a/b", t0 + timedelta(1), progress_percent=50)
    assert same.last_transition_time == first.last_transition_time
    ready = reporting.transition(same, "a/b", t0 + timedelta(2), phase="Ready",
                                 active_version="1")  # fmt: skip
    assert ready.ready_since == ready.last_transition_time == "2026-01-03T00:00:00Z"


def test_a_model_dropped_from_the_spec_is_removed_from_disk(world: Any, tmp_path: Path) -> None:
    agent, api, store, _ = world
    v1 = publish(store, tmp_path, "1.0", 1)
    set_spec(agent, v1)
    agent.step()
    model_dir = agent.settings.data_dir / "models" / Path(v1["name"])
    assert (model_dir / "current").exists()
    set_spec(agent)
    agent.step()
    assert not model_dir.exists()
    assert api.statuses[-1].models == []


def test_nothing_is_removed_before_any_spec_was_received(world: Any, tmp_path: Path) -> None:
    agent, _, _, _ = world
    kept = agent.settings.data_dir / "models" / "ns" / "old"
    kept.mkdir(parents=True)
    agent.step()
    assert kept.exists()


def test_a_metered_label_on_the_edgenode_holds_a_full_download(world: Any, tmp_path: Path) -> None:
    agent, api, store, _ = world
    v1 = publish(store, tmp_path, "1.0", 1)
    node = EdgeNode.model_validate(
        {
            "metadata": {"name": "n1", "labels": {"edgerollout.dev/metered": "true"}},
            "spec": {"models": [v1]},
        }
    )
    agent.set_node(node)
    agent.step()
    (model,) = api.statuses[-1].models
    assert model.phase != "Ready"
    assert model.active_version == ""
    assert model.last_error is not None
    assert "metered" in (model.last_error.reason + model.last_error.message).lower()


def test_an_edgenode_created_again_gets_the_whole_report_at_once(
    world: Any, tmp_path: Path
) -> None:
    """Deleted and created again (by the agent or the operator), the object has no status: the
    next step reports hardware and models though nothing changed on the node."""
    agent, api, store, clock = world
    v1 = publish(store, tmp_path, "1.0", 1)
    agent.set_node(EdgeNode.model_validate({"metadata": {"uid": "a"}, "spec": {"models": [v1]}}))
    agent.step()
    count = len(api.statuses)
    clock.now += timedelta(seconds=1)
    agent.set_node(EdgeNode.model_validate({"metadata": {"uid": "a"}, "spec": {"models": [v1]}}))
    agent.step()
    assert len(api.statuses) == count  # the same object: nothing new to say
    agent.set_node(EdgeNode.model_validate({"metadata": {"uid": "b"}, "spec": {"models": [v1]}}))
    assert agent.wake.is_set()
    agent.step()
    assert len(api.statuses) == count + 1
    assert api.statuses[-1].hardware.cpu_cores > 0
    assert api.statuses[-1].models[0].phase == "Ready"


def test_the_ready_condition_carries_the_generation_it_answers(world: Any, tmp_path: Path) -> None:
    """kstatus and Flux compare conditions[].observedGeneration with metadata.generation."""
    agent, api, store, clock = world
    v1 = publish(store, tmp_path, "1.0", 1)
    body = {"metadata": {"uid": "a", "generation": 10}, "spec": {"models": [v1]}}
    agent.set_node(EdgeNode.model_validate(body))
    agent.step()
    (ready,) = api.statuses[-1].conditions
    assert (ready.type, ready.status, ready.observed_generation) == ("Ready", "True", 10)
    clock.now += timedelta(seconds=1)
    agent.set_node(EdgeNode.model_validate({**body, "metadata": {"uid": "a", "generation": 11}}))
    agent.step()
    assert api.statuses[-1].conditions[0].observed_generation == 11
