"""The agent as a process against the real kube-apiserver and a store served by nginx.

First install, an incremental update that fetches only changed chunks, rollback without any
download, kill -9 in the middle of a pull, and the local /healthz and /metrics endpoint.
"""

from __future__ import annotations

import random
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.testing.controlplane import ControlPlane
from edge_rollout_agent.layout import ModelDir, sha256_file
from tests.integration import store_fixtures
from tests.integration.agent_fixtures import (
    AgentProcess,
    edgenode,
    model_status,
    set_models,
    wait_for,
)
from tests.support import Kubectl
from tests.unit.agent.models import golden_for, linear_model, random_weights
from tests.unit.agent.storefixture import ScratchStore

nginx = store_fixtures.nginx
pytestmark = pytest.mark.usefixtures("crds_installed")


def publish(
    store: ScratchStore, tmp: Path, version: str, size: int, shift: float
) -> dict[str, Any]:
    weights, bias = random_weights(size, size, seed=0)
    data = linear_model(tmp / f"{version}.onnx", weights, bias + shift)
    manifest = store.publish(data, version, golden=golden_for(weights, bias + shift))
    return store.desired(manifest, keepVersion="1.0")


def chunk_requests(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if "/chunks/" in line)


def phase_is(kubectl: Kubectl, node: str, phase: str, version: str) -> Any:
    def probe() -> Any:
        status = model_status(kubectl, node, "ns/dep")
        ok = status and status["phase"] == phase and status.get("activeVersion") == version
        return status if ok else None

    return probe


def test_install_update_rollback_against_the_real_apiserver(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    node = f"edge-{random.randrange(10**6)}"
    v1 = publish(store, tmp_path, "1.0", 256, 0.0) | {"storeUrl": nginx.url}
    v2 = publish(store, tmp_path, "2.0", 256, 1.0) | {"storeUrl": nginx.url}
    agent = AgentProcess(node, control_plane.kubeconfig, tmp_path / "data", tmp_path / "agent.log")
    with agent:
        created = wait_for("the agent to create its EdgeNode with hardware",
                           lambda: (edgenode(kubectl, node) or {}).get("status", {})
                           .get("hardware", {}).get("cpuCores"), log=agent.log)  # fmt: skip
        assert created >= 1
        set_models(kubectl, node, [v1])
        first = wait_for("v1 Ready", phase_is(kubectl, node, "Ready", "1.0"), log=agent.log)
        assert first["bytesFetched"] > 0
        assert first["latency"]["p95Ms"] > 0
        set_models(kubectl, node, [v2])
        second = wait_for("v2 Ready", phase_is(kubectl, node, "Ready", "2.0"), log=agent.log)
        assert second["bytesReused"] > 0
        assert second["bytesFetched"] < first["bytesFetched"]
        before = chunk_requests(nginx.access_log)
        set_models(kubectl, node, [v1])
        wait_for("rollback", phase_is(kubectl, node, "RolledBack", "1.0"), log=agent.log)
        assert chunk_requests(nginx.access_log) == before
        base = f"http://127.0.0.1:{agent.port}"
        with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            assert b"edge_rollout_agent_fetched_bytes_total" in resp.read()
        ready = (edgenode(kubectl, node) or {})["status"]["conditions"][0]
        assert (ready["type"], ready["status"]) == ("Ready", "True")


def test_kill_9_during_a_pull_resumes_and_never_activates_a_bad_file(
    control_plane: ControlPlane, kubectl: Kubectl, nginx: store_fixtures.Nginx, tmp_path: Path
) -> None:
    store = ScratchStore(nginx.root)
    node = f"edge-{random.randrange(10**6)}"
    slow = {"delivery": {"maxBandwidth": "200k"}, "storeUrl": nginx.url}
    v1 = publish(store, tmp_path, "1.0", 384, 0.0) | slow
    agent = AgentProcess(node, control_plane.kubeconfig, tmp_path / "data", tmp_path / "agent.log")
    agent.start()
    try:
        wait_for("EdgeNode", lambda: edgenode(kubectl, node), log=agent.log)
        set_models(kubectl, node, [v1])
        rng = random.Random(4)
        for _ in range(3):
            time.sleep(rng.uniform(0.5, 2.0))
            agent.kill(signal.SIGKILL)
            _assert_current_is_intact(tmp_path / "data")
            agent.start()
        wait_for("v1 Ready", phase_is(kubectl, node, "Ready", "1.0"), 120, log=agent.log)
        _assert_current_is_intact(tmp_path / "data")
    finally:
        agent.kill(signal.SIGTERM)


def _assert_current_is_intact(data_dir: Path) -> None:
    model_dir = ModelDir(data_dir, "ns/dep")
    current = model_dir.link("current")
    if current is None:
        return
    manifest = model_dir.manifest(current)
    assert manifest is not None
    assert sha256_file(model_dir.path(current) / "model.onnx") == manifest.main_file.digest
