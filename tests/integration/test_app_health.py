"""healthGate.appCheck with a real application, real agent, real apiserver, operator and nginx.

The application (tests/fixtures/model_app.py) loads `current/model.onnx` with onnxruntime and
serves /healthz. Release 1.0 is a 10-class MLP, 2.0 a 12-class one. The tolerant build serves
both, so 2.0 goes Ready; the strict build (`--classes 10`) answers 500 on 2.0, so the agent
switches `current` back to 1.0 and reports AppUnhealthy, and the operator tries no other variant.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from kopf.testing import KopfRunner
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support, store_fixtures
from tests.integration.agent_fixtures import AgentProcess, edgenode, model_status
from tests.integration.reporter import delete_nodes
from tests.integration.store_fixtures import free_port
from tests.support import Kubectl

CLI = [sys.executable, "-m", "edge_rollout.cli.main"]
APP = Path(__file__).parents[1] / "fixtures" / "model_app.py"
NODE = f"app-health-{random.randrange(10**5):05d}"
LABEL = "edgerollout.dev/test-fleet"
nginx = store_fixtures.nginx
operator = fleet_support.operator
wait_for = fleet_support.wait_for


def classifier(path: Path, classes: int, seed: int) -> Path:
    """x[batch, 64] -> softmax over `classes`."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((64, classes)).astype(np.float32) * 0.1
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(weights, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def store(nginx: store_fixtures.Nginx, tmp_path: Path) -> tuple[str, str]:
    """Releases 1.0 (10 classes) and 2.0 (12 classes), fp32 and fp16, behind nginx."""
    subprocess.run([*CLI, "keygen", str(tmp_path / "key")], check=True, capture_output=True)
    for version, classes in (("1.0", 10), ("2.0", 12)):
        model = classifier(tmp_path / f"c{classes}.onnx", classes, seed=classes)
        subprocess.run(
            [*CLI, "publish", str(model), "--name", "m", "--version", version, "--store",
             str(nginx.root), "--key", str(tmp_path / "key"), "--variants", "fp32,fp16",
             "--runs", "2", "--samples", "2"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return nginx.url, (tmp_path / "key.pub").read_text()


@pytest.fixture
def agent(control_plane: ControlPlane, kubectl: Kubectl, tmp_path: Path) -> Iterator[Path]:
    """One Node with a real agent; yields its data directory."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {LABEL: NODE}}}
    kubectl("apply", "-f", "-", input=json.dumps(node))
    process = AgentProcess(NODE, control_plane.kubeconfig, tmp_path / "data", tmp_path / "a.log")
    process.start()
    try:
        yield tmp_path / "data"
    finally:
        process.kill(signal.SIGTERM)
        delete_nodes([NODE])


def start_app(model_dir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(APP), "--model-dir", str(model_dir), "--port", str(port), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def apply(kubectl: Kubectl, namespace: str, store: tuple[str, str], version: str,
          port: int) -> None:  # fmt: skip
    body = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {
            "model": {"name": "m", "version": version,
                      "store": {"url": store[0], "publicKey": store[1]}},
            "nodeSelector": {"matchLabels": {LABEL: NODE}},
            "selection": {"allowedVariants": ["fp32", "fp16"]},
            "strategy": {"maxUnavailable": 1, "minReadySeconds": 0,
                         "progressDeadlineSeconds": 600},
            "healthGate": {"appCheck": {
                "httpGet": {"url": f"http://127.0.0.1:{port}/healthz"},
                "timeoutSeconds": 4, "periodSeconds": 1}},
        },
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(body))


def reported(kubectl: Kubectl, namespace: str, phase: str, version: str) -> Any:
    found = model_status(kubectl, NODE, f"{namespace}/m") or {}
    return found if (found.get("phase"), found.get("version")) == (phase, version) else None


def unhealthy_and_stopped(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    found = deployment(kubectl, namespace)
    worst = {w["reason"] for w in found.get("worstNodes") or []}
    stopped = found.get("phase") in ("Failed", "Degraded", "RolledBack")
    return found if stopped and "AppUnhealthy" in worst else None


def deployment(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    out = kubectl("get", "mdep", "m", "-n", namespace, "-o", "json").stdout
    found: dict[str, Any] = json.loads(out).get("status") or {}
    return found


def events(kubectl: Kubectl, namespace: str, reason: str) -> list[str]:
    listing = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return [e["message"] for e in listing["items"] if e.get("reason") == reason]


def served(data_dir: Path, namespace: str) -> str:
    return (data_dir / "models" / namespace / "m" / "current").resolve().name


def roll_to_2(kubectl: Kubectl, namespace: str, store: tuple[str, str], port: int,
              data_dir: Path) -> None:  # fmt: skip
    """1.0 Ready (the app healthy on it), then ask for 2.0."""
    apply(kubectl, namespace, store, "1.0", port)
    wait_for(partial(reported, kubectl, namespace, "Ready", "1.0"), "1.0 Ready", timeout=120)
    assert served(data_dir, namespace).startswith("1.0-")
    wait_for(lambda: deployment(kubectl, namespace).get("stableVersion") == "1.0",
             "1.0 stable", timeout=60)  # fmt: skip
    apply(kubectl, namespace, store, "2.0", port)


def test_a_healthy_application_lets_the_new_version_go_ready(
    kubectl: Kubectl, namespace: str, store: tuple[str, str], agent: Path, operator: KopfRunner
) -> None:
    port = free_port()
    app = start_app(agent / "models" / namespace / "m", port)
    try:
        roll_to_2(kubectl, namespace, store, port, agent)
        found = wait_for(partial(reported, kubectl, namespace, "Ready", "2.0"), "2.0 Ready",
                         timeout=120)  # fmt: skip
        assert found["activeVersion"] == "2.0"
        assert served(agent, namespace).startswith("2.0-")
    finally:
        app.terminate()
        app.wait(timeout=10)
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")


def test_an_app_unhealthy_on_the_new_version_rolls_back_with_no_fallback(
    kubectl: Kubectl, namespace: str, store: tuple[str, str], agent: Path, operator: KopfRunner
) -> None:
    port = free_port()
    app = start_app(agent / "models" / namespace / "m", port, "--classes", "10")
    try:
        roll_to_2(kubectl, namespace, store, port, agent)
        stopped = wait_for(partial(unhealthy_and_stopped, kubectl, namespace),
                           "AppUnhealthy and the rollout stopped", timeout=120)  # fmt: skip
        assert stopped["phase"] == "RolledBack", stopped
        worst = stopped["worstNodes"][0]
        assert (worst["node"], worst["reason"]) == (NODE, "AppUnhealthy"), worst
        for text in (f"GET http://127.0.0.1:{port}/healthz", "HTTP 500", "serves 10 classes",
                     "2.0-fp32 has 12", "switched back to 1.0/fp32"):  # fmt: skip
            assert text in worst["message"], worst["message"]
        assert served(agent, namespace) == "1.0-fp32"
        assert not (agent / "models" / namespace / "m" / "2.0-fp32").exists()
        wait_for(partial(reported, kubectl, namespace, "Ready", "1.0"), "the node on 1.0",
                 timeout=30)  # fmt: skip
        time.sleep(4)  # several replans: none may ask for another variant of 2.0
        assert not events(kubectl, namespace, "VariantFallback")
        asked = {
            (e["version"], e["variant"]) for e in fleet_support.entries(kubectl, namespace).values()
        }
        assert asked == {("1.0", "fp32")}, asked
        assert served(agent, namespace) == "1.0-fp32"
        log = (agent.parent / "a.log").read_text()
        assert "2.0/fp16" not in log, "the agent was asked for another variant"
        assert deployment(kubectl, namespace)["phase"] == "RolledBack"
        assert (edgenode(kubectl, NODE) or {}).get("status"), "the agent still reports"
    finally:
        app.terminate()
        app.wait(timeout=10)
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")
