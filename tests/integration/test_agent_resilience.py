"""The agent process under store faults and kill -9, against the real apiserver and nginx.

A fault-injecting proxy in front of nginx serves 5xx, resets, truncated bodies, stalls and flipped
bits: each is detected and retried (or, when it never stops, reported), and nothing corrupt is
ever activated. Twenty kill -9 trials at random points of an update (download, assembly,
activation) each resume and finish with a `current` that matches its digest.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.testing.controlplane import ControlPlane
from edge_rollout_agent.layout import ModelDir, sha256_file
from tests.fixtures.faulty_http import KINDS, Fault, FaultyProxy
from tests.integration import store_fixtures
from tests.integration.agent_fixtures import (
    AgentProcess,
    edgenode,
    model_status,
    set_models,
    wait_for,
)
from tests.integration.test_agent import phase_is, publish
from tests.support import Kubectl
from tests.unit.agent.storefixture import ScratchStore

nginx = store_fixtures.nginx
pytestmark = pytest.mark.usefixtures("crds_installed")
KILL_TRIALS = 20


def assert_current_is_intact(data_dir: Path) -> str | None:
    """The version `current` points at, after checking its file against its manifest digest."""
    model_dir = ModelDir(data_dir, "ns/dep")
    current = model_dir.link("current")
    if current is None:
        return None
    manifest = model_dir.manifest(current)
    assert manifest is not None
    assert sha256_file(model_dir.path(current) / "model.onnx") == manifest.main_file.digest
    return current.version


def start_agent(control_plane: ControlPlane, kubectl: Kubectl, tmp_path: Path,
                *extra: str) -> AgentProcess:  # fmt: skip
    node = f"edge-{random.randrange(10**6)}"
    agent = AgentProcess(node, control_plane.kubeconfig, tmp_path / "data", tmp_path / "agent.log",
                         extra=list(extra))  # fmt: skip
    agent.start()
    wait_for("EdgeNode", lambda: edgenode(kubectl, node), log=agent.log)
    return agent


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "flip"])
def test_transient_store_faults_are_retried_and_the_model_is_installed(
    kind: str, control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx,
    tmp_path: Path,
) -> None:  # fmt: skip
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0)
    with FaultyProxy(nginx.url, Fault(kind, times=1, stall_seconds=4)) as proxy:
        agent = start_agent(control_plane, kubectl, tmp_path, "--store-timeout", "2")
        try:
            set_models(kubectl, agent.node, [v1 | {"storeUrl": proxy.url}])
            wait_for("Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        finally:
            agent.kill(signal.SIGTERM)
    assert proxy.injected[kind] > 0
    assert assert_current_is_intact(tmp_path / "data") == "1.0"


def test_transient_flipped_bits_are_caught_by_the_digest_and_fetched_again(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0)
    with FaultyProxy(nginx.url, Fault("flip", times=1)) as proxy:
        agent = start_agent(control_plane, kubectl, tmp_path)
        try:
            set_models(kubectl, agent.node, [v1 | {"storeUrl": proxy.url}])
            wait_for("Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        finally:
            agent.kill(signal.SIGTERM)
    assert proxy.injected["flip"] > 0
    assert assert_current_is_intact(tmp_path / "data") == "1.0"


def test_bits_flipped_every_time_are_reported_and_never_activated(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    v1 = publish(store, tmp_path, "1.0", 256, 0.0)
    v2 = publish(store, tmp_path, "2.0", 256, 0.5)
    agent = start_agent(control_plane, kubectl, tmp_path)
    try:
        set_models(kubectl, agent.node, [v1 | {"storeUrl": nginx.url}])
        wait_for("v1 Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        with FaultyProxy(nginx.url, Fault("flip", times=None)) as proxy:
            set_models(kubectl, agent.node, [v2 | {"storeUrl": proxy.url}])
            reported = wait_for("the corruption reported", lambda: _error(kubectl, agent.node),
                                120, log=agent.log)  # fmt: skip
            assert reported["activeVersion"] == "1.0"
            assert assert_current_is_intact(tmp_path / "data") == "1.0"
    finally:
        agent.kill(signal.SIGTERM)
    assert proxy.injected["flip"] > 0


def _error(kubectl: Kubectl, node: str) -> dict[str, Any] | None:
    status = model_status(kubectl, node, "ns/dep")
    error = (status or {}).get("lastError") or {}
    return status if error.get("reason") in ("ChunkCorrupt", "DigestMismatch") else None


def test_kill_9_at_random_points_of_an_update_never_activates_a_bad_file(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    """Twenty trials: half while downloading (bandwidth capped), half with no cap, so kills land
    in assembly, the smoke test and activation too. Each restart resumes."""
    store = ScratchStore(nginx.root)
    versions = [publish(store, tmp_path, f"{i}.0", 384, 0.1 * i) for i in range(1, 4)]
    started = time.monotonic()
    agent = start_agent(control_plane, kubectl, tmp_path)
    rng = random.Random(20)
    seen: set[str | None] = set()
    try:
        # Kills land up to 2.5 s after the spec changes, or up to as long as a fresh agent took
        # to install the first version here (a busy machine: restart and install take longer).
        set_models(kubectl, agent.node, [versions[0] | {"storeUrl": nginx.url}])
        wait_for("1.0 Ready", phase_is(kubectl, agent.node, "Ready", "1.0"), 120, log=agent.log)
        span = max(2.5, time.monotonic() - started)
        for trial in range(KILL_TRIALS):
            wanted = versions[(trial + 1) % len(versions)]
            capped = {"delivery": {"maxBandwidth": "300k"}} if trial % 2 == 0 else {}
            set_models(kubectl, agent.node, [wanted | {"storeUrl": nginx.url} | capped])
            time.sleep(rng.uniform(0.08, 1.0) * span)
            agent.kill(signal.SIGKILL)
            seen.add(assert_current_is_intact(tmp_path / "data"))
            agent.start()
        final = versions[KILL_TRIALS % len(versions)]
        ready = phase_is(kubectl, agent.node, "Ready", final["version"])
        wait_for("the last version Ready", ready, 180, log=agent.log)
    finally:
        agent.kill(signal.SIGTERM)
    assert assert_current_is_intact(tmp_path / "data") == final["version"]
    assert len(seen - {None, "1.0"}) >= 1, f"kills never landed after an activation: {seen}"
