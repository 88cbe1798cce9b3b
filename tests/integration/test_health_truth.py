"""Health that means something, with real agents, the real apiserver and the operator (issue 13).

Four agents serve a small MLP published by the CLI (fp32, fp16, int8): two plain CPU nodes and
two whose hardware profile leaves no memory for any variant. Release 3.0 carries 1.0's golden
vectors (`--golden-from 1.0`) though its weights differ, so no vector agrees on any variant.
Shown here: healthGate.maxLatencyMs refuses a node; every node too small is Degraded with
Ready=False (`kubectl wait --for=condition=Ready` does not succeed); a TestVectorMismatch is not
followed by another variant of the same release; `kubectl edge-rollout abort --rollback` finishes
within seconds of the nodes reporting RolledBack, not after the progress deadline; Nodes without
an agent make the deployment Degraded with reason NoAgent, without trying any variant.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support
from tests.integration.agent_fixtures import AgentProcess, edgenode
from tests.integration.reporter import delete_nodes
from tests.integration.store_fixtures import build_mlp
from tests.integration.test_kubectl_plugin import Plugin
from tests.support import Kubectl

CLI = [sys.executable, "-m", "edge_rollout.cli.main"]
SUFFIX = f"{random.randrange(10**5):05d}"
LABEL = "edgerollout.dev/test-fleet"
PLAIN, SMALL, GHOST = f"ht-plain-{SUFFIX}", f"ht-small-{SUFFIX}", f"ht-ghost-{SUFFIX}"
GHOSTS = [f"ht-noagent-{SUFFIX}-{i}" for i in range(2)]
NODES = {f"ht-cpu-{SUFFIX}-{i}": PLAIN for i in range(2)} | {
    f"ht-tiny-{SUFFIX}-{i}": SMALL for i in range(2)
}
TINY_PROFILE = {"name": "tiny", "memoryBytes": 4096}
operator = fleet_support.operator
wait_for = fleet_support.wait_for


@dataclass
class Fleet:
    store: Path
    public_key: str
    agents: list[AgentProcess]


@pytest.fixture(scope="module")
def fleet(
    control_plane: ControlPlane, kubectl: Kubectl, crds_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:  # fmt: skip
    work = tmp_path_factory.mktemp("health-truth")
    subprocess.run([*CLI, "keygen", str(work / "key")], check=True, capture_output=True)
    for version, seed, extra in (("1.0", 0, []), ("2.0", 1, []),
                                 ("3.0", 2, ["--golden-from", "1.0"])):  # fmt: skip
        model = build_mlp(work / f"mlp-{seed}.onnx", seed=seed)
        subprocess.run(
            [*CLI, "publish", str(model), "--name", "m", "--version", version, "--store",
             str(work / "store"), "--key", str(work / "key"), "--variants", "fp32,fp16,int8",
             "--runs", "2", "--samples", "2", *extra],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY_PROFILE))
    agents = []
    for node, group in NODES.items():
        node_object = {"apiVersion": "v1", "kind": "Node",
                       "metadata": {"name": node, "labels": {LABEL: group}}}  # fmt: skip
        kubectl("apply", "-f", "-", input=json.dumps(node_object))
        extra = ["--hardware-profile", str(work / "tiny.yaml")] if group == SMALL else []
        agent = AgentProcess(node, control_plane.kubeconfig, work / node, work / f"{node}.log",
                             extra=extra)  # fmt: skip
        agents.append(agent.start())
    for node in NODES:
        wait_for(partial(_reported, kubectl, node), f"{node}'s hardware report", timeout=60)
    try:
        yield Fleet(work / "store", (work / "key.pub").read_text(), agents)
    finally:
        for agent in agents:
            agent.kill(signal.SIGTERM)
        delete_nodes([*NODES, *GHOSTS])


def _reported(kubectl: Kubectl, node: str) -> bool:
    status = (edgenode(kubectl, node) or {}).get("status") or {}
    return bool(status.get("heartbeatTime") and status.get("hardware", {}).get("cpuCores"))


def apply(kubectl: Kubectl, namespace: str, fleet: Fleet, version: str, group: str = PLAIN,
          **spec: Any) -> None:  # fmt: skip
    body = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {
            "model": {"name": "m", "version": version,
                      "store": {"url": f"file://{fleet.store}", "publicKey": fleet.public_key}},
            "nodeSelector": {"matchLabels": {LABEL: group}},
            "strategy": {"maxUnavailable": 2, "minReadySeconds": 0,
                         "progressDeadlineSeconds": 600},
            **spec,
        },
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(body))


def status(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    out = kubectl("get", "mdep", "m", "-n", namespace, "-o", "json").stdout
    found: dict[str, Any] = json.loads(out).get("status") or {}
    return found


def condition(found: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in found.get("conditions", []) if c["type"] == type_)


def phase_in(kubectl: Kubectl, namespace: str, *phases: str) -> dict[str, Any] | None:
    found = status(kubectl, namespace)
    return found if found.get("phase") in phases else None


def reports(kubectl: Kubectl, namespace: str) -> dict[str, dict[str, Any]]:
    """node -> what its agent reports for `namespace/m`."""
    found = {}
    for node, group in NODES.items():
        models = ((edgenode(kubectl, node) or {}).get("status") or {}).get("models") or []
        for model in models:
            if model["name"] == f"{namespace}/m" and group == PLAIN:
                found[node] = model
    return found


def paused_with_one(kubectl: Kubectl, namespace: str) -> dict[str, Any] | None:
    found = status(kubectl, namespace)
    paused = found.get("phase") == "Paused" and found.get("counts", {}).get("succeeded") == 1
    return found if paused else None


def generations_observed(kubectl: Kubectl) -> bool:
    """Every agent's EdgeNode Ready condition answers the EdgeNode's current generation."""
    for node in NODES:
        body = edgenode(kubectl, node) or {}
        ready = [
            c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == "Ready"
        ]
        if not ready or ready[0].get("observedGeneration") != body["metadata"]["generation"]:
            return False
    return True


def events(kubectl: Kubectl, namespace: str, reason: str) -> list[str]:
    listing = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return [e["message"] for e in listing["items"] if e.get("reason") == reason]


def test_max_latency_refuses_every_variant_on_the_node(
    kubectl: Kubectl, namespace: str, fleet: Fleet, operator: KopfRunner
) -> None:
    apply(kubectl, namespace, fleet, "1.0", healthGate={"maxLatencyMs": 0.000001})
    found = wait_for(partial(phase_in, kubectl, namespace, "Failed", "Degraded"),
                     "the gate to refuse the nodes", timeout=120)  # fmt: skip
    assert condition(found, "Ready")["status"] == "False"
    reasons = {w["reason"] for w in found["worstNodes"]}
    assert reasons == {"LatencyAboveGate"}, found["worstNodes"]
    assert all("spec.healthGate.maxLatencyMs" in w["message"] for w in found["worstNodes"])
    for node, model in reports(kubectl, namespace).items():
        assert model["activeVersion"] == "", f"{node} activated a version the gate refused"
        assert model["lastError"]["reason"] == "LatencyAboveGate"
    assert events(kubectl, namespace, "VariantFallback"), "a latency failure is variant-specific"
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")


def test_every_node_too_small_is_degraded_and_never_ready(
    kubectl: Kubectl,
    namespace: str,
    fleet: Fleet,
    operator: KopfRunner,
    control_plane: ControlPlane,
) -> None:
    apply(kubectl, namespace, fleet, "1.0", group=SMALL)
    found = wait_for(partial(phase_in, kubectl, namespace, "Degraded"), "Degraded", timeout=60)
    assert condition(found, "Ready")["status"] == "False"
    assert condition(found, "Ready")["reason"] == "NoFittingVariant"
    assert condition(found, "Degraded")["status"] == "True"
    assert found["counts"]["succeeded"] == 0
    assert found["counts"]["failed"] == 2
    waited = subprocess.run(
        [str(control_plane.kubectl), "--kubeconfig", str(control_plane.kubeconfig), "wait",
         "--for=condition=Ready", "mdep/m", "-n", namespace, "--timeout=5s"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert waited.returncode != 0, waited.stdout
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")


def test_a_test_vector_mismatch_tries_no_other_variant(
    kubectl: Kubectl, namespace: str, fleet: Fleet, operator: KopfRunner
) -> None:
    apply(kubectl, namespace, fleet, "3.0")
    wait_for(lambda: len(reports(kubectl, namespace)) == 2 and all(
        m.get("lastError", {}).get("reason") == "TestVectorMismatch"
        for m in reports(kubectl, namespace).values()), "TestVectorMismatch on both nodes",
        timeout=120)  # fmt: skip
    found = wait_for(partial(phase_in, kubectl, namespace, "Failed", "Degraded"),
                     "the rollout to stop", timeout=60)  # fmt: skip
    time.sleep(4)  # several replans: none may ask for another variant
    assert not events(kubectl, namespace, "VariantFallback")
    for entry in fleet_support.entries(kubectl, namespace).values():
        assert len(entry.get("excludedVariants") or []) <= 1, entry
    worst = status(kubectl, namespace)["worstNodes"]
    assert {w["reason"] for w in worst} == {"TestVectorMismatch"}
    assert condition(found, "Ready")["status"] == "False"
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")


def test_a_manual_rollback_finishes_within_seconds(
    kubectl: Kubectl,
    namespace: str,
    fleet: Fleet,
    operator: KopfRunner,
    control_plane: ControlPlane,
) -> None:
    apply(kubectl, namespace, fleet, "1.0")
    wait_for(partial(phase_in, kubectl, namespace, "Ready"), "1.0 Ready", timeout=120)
    apply(kubectl, namespace, fleet, "2.0",
          strategy={"maxUnavailable": 2, "minReadySeconds": 0, "progressDeadlineSeconds": 600,
                    "steps": [{"setNodeCount": 1}, {"pause": {}}]})  # fmt: skip
    found = wait_for(partial(paused_with_one, kubectl, namespace), "the pause", timeout=120)
    assert condition(found, "Progressing")["status"] == "True"
    Plugin(control_plane)("abort", "m", "-n", namespace, "--rollback")
    started = time.monotonic()

    def back() -> bool:
        found = status(kubectl, namespace)
        served = reports(kubectl, namespace)
        return (
            found.get("phase") == "Ready"
            and found.get("stableVersion") == "1.0"
            and all(m.get("activeVersion") == "1.0" for m in served.values())
            and condition(found, "Ready")["status"] == "True"
        )

    wait_for(back, "the rollback to finish", timeout=60)
    took = time.monotonic() - started
    assert took < 30, f"the rollback took {took:.0f} s"
    phases = {m["phase"] for m in reports(kubectl, namespace).values()}
    assert "RolledBack" in phases, phases
    wait_for(partial(generations_observed, kubectl), "EdgeNode observedGeneration", timeout=20)
    assert not events(kubectl, namespace, "VariantFallback")
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")


def test_nodes_without_an_agent_are_no_agent_not_a_timeout(
    kubectl: Kubectl, namespace: str, fleet: Fleet, operator: KopfRunner
) -> None:
    for node in GHOSTS:
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "labels": {LABEL: GHOST}}}  # fmt: skip
        kubectl("apply", "-f", "-", input=json.dumps(body))
    apply(kubectl, namespace, fleet, "1.0", group=GHOST)
    found = wait_for(partial(phase_in, kubectl, namespace, "Degraded"), "Degraded", timeout=60)
    assert condition(found, "Ready")["status"] == "False"
    assert condition(found, "Degraded")["reason"] == "NoAgent"
    assert "2 with no agent" in found["message"]
    assert {(w["node"], w["phase"]) for w in found["worstNodes"]} == {
        (n, "NoAgent") for n in GHOSTS
    }
    assert not fleet_support.entries(kubectl, namespace), (
        "no variant is asked of a node without agent"
    )
    assert not events(kubectl, namespace, "VariantFallback")
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")
