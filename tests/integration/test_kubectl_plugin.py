"""`kubectl edge-rollout` through kubectl's own plugin lookup, against the real apiserver.

A signed file:// store with releases 1.0 and 2.0, five scripted agents with different hardware
(selected by the deployment), one Node without an agent (not selected; its hardware comes from
labels), and the operator: the plugin's status, why, nodes and plan agree with what the operator
did, plan applies nothing, and the steering commands patch exactly the spec fields they name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client

from edge_rollout.api.edgenode import Hardware
from edge_rollout.cli import kubectl as kubectl_cli
from edge_rollout.kube import client as kube_client
from edge_rollout.store import keys
from edge_rollout.store.writer import DirectoryStore
from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support
from tests.integration.reporter import ScriptedReporter, delete_nodes
from tests.support import REPO, Kubectl
from tests.unit.core.fixtures import GIB, MIB, hardware, release

VARIANTS = {"fp32", "fp16", "int8", "int8-npu"}
LABEL = "edgerollout.dev/plugin-test"
LABELS_ONLY = "kp-labels-gpu"


def fleet_hardware() -> dict[str, Hardware]:
    return {
        "kp-cpu": hardware("cpu"),
        "kp-gpu": hardware("gpu"),
        "kp-npu": hardware("npu"),
        "kp-small": hardware("cpu", memory=256 * MIB),
        "kp-big": hardware("cpu", memory=16 * GIB),
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("plugin-store")
    key = keys.generate_private_key()
    for version in ("1.0", "2.0"):
        directory = DirectoryStore(root)
        directory.publish(fleet_support.with_stored_manifests(directory, release(version)), key)
    return root, keys.public_key_pem(key.public_key())


@pytest.fixture(scope="module")
def fleet(crds_installed: None) -> Iterator[ScriptedReporter]:
    reporter = ScriptedReporter(fleet_hardware(), labels={LABEL: "yes"}, delay=0.2, interval=0.2)
    reporter.start()
    client.CoreV1Api(kube_client.api_client()).create_node(labels_only_node())
    yield reporter
    reporter.stop()
    delete_nodes([*reporter.hardware, LABELS_ONLY])


def labels_only_node() -> client.V1Node:
    """A Node whose agent has not reported: an NVIDIA GPU by its labels, 8 GiB allocatable."""
    labels = {
        "kubernetes.io/arch": "arm64",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "Jetson-Orin",
    }
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=LABELS_ONLY, labels=labels),
        status=client.V1NodeStatus(allocatable={"memory": "8Gi"}, capacity={"memory": "8Gi"}),
    )


operator = fleet_support.operator


class Plugin:
    """`kubectl edge-rollout ...`, resolved by kubectl's plugin lookup on PATH."""

    def __init__(self, plane: ControlPlane) -> None:
        self.venv_bin = REPO / ".venv" / "bin"
        path = os.pathsep.join([str(self.venv_bin), str(plane.bin_dir), os.environ["PATH"]])
        self.env = {**os.environ, "PATH": path, "KUBECONFIG": str(plane.kubeconfig)}
        self.kubectl = str(plane.kubectl)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl, "edge-rollout", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl edge-rollout {' '.join(args)}:\n{result.stderr}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


class Direct(Plugin):
    """The same commands in this process (each plugin process spends ~1 s importing): used for
    the many JSON checks, while `Plugin` proves the kubectl lookup and the real process."""

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                kubectl_cli.main(list(args))
            except SystemExit as exit_:
                code = int(exit_.code or 0)
        result = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
        if check and code != 0:
            raise AssertionError(f"edge-rollout {' '.join(args)}:\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def plugin(control_plane: ControlPlane) -> Plugin:
    return Plugin(control_plane)


@pytest.fixture(scope="module")
def direct(control_plane: ControlPlane) -> Plugin:
    return Direct(control_plane)


def document(
    namespace: str, store: tuple[Path, str], version: str, **strategy: Any
) -> dict[str, Any]:
    root, public_key = store
    return {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {
            "model": {
                "name": "m",
                "version": version,
                "store": {"url": f"file://{root}", "publicKey": public_key},
            },
            "nodeSelector": {"matchLabels": {LABEL: "yes"}},
            "strategy": {"maxUnavailable": 6, "minReadySeconds": 0, **strategy},
        },
    }


def md_json(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        kubectl("get", "mdep", "m", "-n", namespace, "-o", "json").stdout
    )
    return out


def phase(kubectl: Kubectl, namespace: str, wanted: str, version: str) -> Callable[[], bool]:
    def check() -> bool:
        status = md_json(kubectl, namespace).get("status", {})
        return bool(status.get("phase") == wanted and status.get("stableVersion") == version)

    return check


def at_step(kubectl: Kubectl, namespace: str, index: int) -> Callable[[], bool]:
    def check() -> bool:
        status = md_json(kubectl, namespace).get("status", {})
        return bool(status.get("targetVersion") == "2.0" and status["currentStepIndex"] == index)

    return check


def test_plugin_views_and_controls(
    operator: KopfRunner,
    kubectl: Kubectl,
    plugin: Plugin,
    direct: Plugin,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
    tmp_path: Path,
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(document(namespace, store, "1.0")))
    wait_for(phase(kubectl, namespace, "Ready", "1.0"), "1.0 Ready")

    check_status(plugin, direct, namespace)
    check_why_matches_operator(plugin, direct, kubectl, namespace)
    check_nodes(plugin, direct)
    check_plan_applies_nothing(plugin, direct, kubectl, namespace, store, tmp_path)
    check_promote_pause_resume_abort(plugin, direct, kubectl, namespace, store)


def check_status(plugin: Plugin, direct: Plugin, namespace: str) -> None:
    table = plugin("status", "m", "-n", namespace).stdout
    for text in ("phase Ready", "target 1.0", "stable 1.0", "TARGETED", "Variants", "Conditions"):
        assert text in table, table
    data = direct.json("status", "m", "-n", namespace)
    assert data["phase"] == "Ready"
    assert data["counts"]["targeted"] == data["counts"]["succeeded"] == 5
    assert set(data["variants"]) <= VARIANTS
    assert data["bytes"]["savedPercent"] == 90.0
    as_yaml = yaml.safe_load(direct("status", "m", "-n", namespace, "-o", "yaml").stdout)
    assert as_yaml == data


def check_why_matches_operator(
    plugin: Plugin, direct: Plugin, kubectl: Kubectl, namespace: str
) -> None:
    asked = entries(kubectl, namespace)
    for node in fleet_hardware():
        [explained] = direct.json("why", node, "-n", namespace)
        candidates = {c["variant"]: c for c in explained["candidates"]}
        assert set(candidates) == VARIANTS, explained
        assert all(c["reason"] and c["message"] for c in candidates.values()), explained
        assert [c["variant"] for c in candidates.values() if c["chosen"]] == [explained["variant"]]
        assert explained["variant"] == asked[node]["variant"], (node, explained)
    expected = {"kp-npu": "int8-npu", "kp-gpu": "fp16", "kp-small": "int8", "kp-big": "fp32"}
    for node, variant in expected.items():
        assert asked[node]["variant"] == variant
    [small] = direct.json("why", "kp-small", "m", "-n", namespace)
    reasons = {c["variant"]: c["reason"] for c in small["candidates"]}
    assert reasons == {
        "fp32": "DoesNotFit",
        "fp16": "NoExecutionProvider",
        "int8": "BestScore",
        "int8-npu": "NoExecutionProvider",
    }
    assert direct.json("why", LABELS_ONLY) == []  # no -n: every namespace; none selects it
    [labelled] = direct.json("why", LABELS_ONLY, "m", "-n", namespace)
    assert labelled["selected"] is False
    assert labelled["hardwareSource"] == "node labels"
    assert labelled["variant"] == "fp16"
    assert {c["variant"] for c in labelled["candidates"]} == VARIANTS
    table = plugin("why", "kp-small", "-n", namespace).stdout
    for text in ("kp-small", "DoesNotFit", "NoExecutionProvider", "chosen", "memory left"):
        assert text in table, table


def check_nodes(plugin: Plugin, direct: Plugin) -> None:
    table = plugin("nodes").stdout
    for text in ("kp-npu", "hailo", "kp-big", "16.0 GiB", "amd64", "Ready 1.0/"):
        assert text in table, table
    data = {n["name"]: n for n in direct.json("nodes")}
    assert data["kp-gpu"]["hardware"]["accelerators"][0]["vendor"] == "nvidia"
    assert data["kp-npu"]["models"][0]["phase"] == "Ready"


def check_plan_applies_nothing(
    plugin: Plugin,
    direct: Plugin,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    tmp_path: Path,
) -> None:
    before = (
        md_json(kubectl, namespace)["metadata"]["resourceVersion"],
        entries(kubectl, namespace),
    )
    path = tmp_path / "md.yaml"
    path.write_text(yaml.safe_dump(document(namespace, store, "2.0", steps=[{"setNodeCount": 2}])))
    data = plugin.json("plan", "-f", str(path))
    assert data["applied"] is False
    assert data["version"] == "2.0"
    assert {p["node"] for p in data["nodes"]} == set(fleet_hardware())
    assert all({c["variant"] for c in p["candidates"]} == VARIANTS for p in data["nodes"])
    assert sum(p["askedNow"].startswith("2.0/") for p in data["nodes"]) == 2
    table = direct("plan", "-f", str(path)).stdout
    assert "nothing was applied" in table, table
    console = subprocess.run(
        [plugin.venv_bin / "edge-rollout", "plan", "-f", str(path), "-o", "json"],
        env=plugin.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(console.stdout)["nodes"] == data["nodes"]
    after = (
        md_json(kubectl, namespace)["metadata"]["resourceVersion"],
        entries(kubectl, namespace),
    )
    assert after == before
    bad = document(namespace, store, "2.0", maxUnavailable="120%")
    path.write_text(yaml.safe_dump(bad))
    refused = direct("plan", "-f", str(path), check=False)
    assert refused.returncode == 1
    assert "percentage from 0% to 100%" in refused.stderr


def check_promote_pause_resume_abort(
    plugin: Plugin, direct: Plugin, kubectl: Kubectl, namespace: str, store: tuple[Path, str]
) -> None:
    steps = [{"setNodeCount": 1}, {"pause": {}}, {"setNodeCount": 2}, {"pause": {}}]
    kubectl("apply", "-f", "-", input=json.dumps(document(namespace, store, "2.0", steps=steps)))
    wait_for(at_step(kubectl, namespace, 1), "the first pause")
    table = plugin("status", "m", "-n", namespace).stdout
    assert "step 1/4: pause until approved" in table, table
    assert f"kubectl edge-rollout promote m -n {namespace}" in table, table
    promoted = plugin("promote", "m", "-n", namespace).stdout
    assert "promoted" in promoted
    approved = md_json(kubectl, namespace)["spec"]["strategy"]["approved"]
    assert approved == {"version": "2.0", "throughStep": 1}
    wait_for(at_step(kubectl, namespace, 3), "the second pause")

    direct("pause", "m", "-n", namespace)
    assert md_json(kubectl, namespace)["spec"]["paused"] is True
    direct("resume", "m", "-n", namespace)
    assert md_json(kubectl, namespace)["spec"]["paused"] is False

    aborted = plugin("abort", "m", "-n", namespace).stdout
    spec = md_json(kubectl, namespace)["spec"]
    assert spec["paused"] is True
    assert spec["model"]["version"] == "2.0"
    assert "spec.model.version: '1.0'" in aborted, aborted
    time.sleep(2)  # paused: nothing moves
    assert sum(e["version"] == "2.0" for e in entries(kubectl, namespace).values()) == 2
    direct("abort", "m", "-n", namespace, "--rollback")
    spec = md_json(kubectl, namespace)["spec"]
    assert (spec["model"]["version"], spec["paused"]) == ("1.0", False)
    assert spec["strategy"]["approved"] == {"version": "1.0", "throughStep": 64}
    wait_for(
        lambda: {e["version"] for e in entries(kubectl, namespace).values()} == {"1.0"},
        "every node back on 1.0",
    )
    wait_for(phase(kubectl, namespace, "Ready", "1.0"), "1.0 Ready again")


entries = fleet_support.entries
wait_for = fleet_support.wait_for
