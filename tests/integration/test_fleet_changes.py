"""The fleet changes under a running rollout, with real agents and the real apiserver (issue 14).

Two agents (one with a GPU hardware profile) serve a small MLP published by the CLI; the
operator runs in-process. Each case changes the fleet the way an operator of a real fleet does
(delete a ModelDeployment and apply it again under the same name, relabel a node, delete the
Node object, delete the EdgeNode while its agent runs, add a Node before its agent) and checks
that within seconds the fleet is consistent: entries exactly on the selected nodes, every agent
serving what its entry says, the status counting exactly those nodes at the current generation.
The GPU node must never be asked for fp32, even while its hardware report is missing.
"""

from __future__ import annotations

import json
import random
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from edge_rollout.controller import handlers
from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support
from tests.integration.agent_fixtures import AgentProcess, edgenode
from tests.integration.reporter import delete_nodes
from tests.integration.store_fixtures import publish_mlp
from tests.support import Kubectl

LABELS = {"edgerollout.dev/test-fleet": "fleet-changes"}
SUFFIX = f"{random.randrange(10**5):05d}"
GPU, CPU, LATE = f"fc-gpu-{SUFFIX}", f"fc-cpu-{SUFFIX}", f"fc-late-{SUFFIX}"
GPU_PROFILE = {
    "name": "test-gpu",
    "memoryBytes": 8 << 30,
    "executionProviders": ["CUDAExecutionProvider"],
    "accelerators": [{"class": "gpu", "vendor": "nvidia", "model": "T4",
                      "executionProvider": "CUDAExecutionProvider"}],
}  # fmt: skip
CONSISTENT_WITHIN = 20.0
"""Seconds a change may take to settle (a replan a second, an agent heartbeat of 2 s and the
install or removal of a 70 KB model)."""
operator = fleet_support.operator
wait_for = fleet_support.wait_for


@dataclass
class Fleet:
    """The store, the Nodes and the running agents of the module."""

    store: Path
    public_key: str
    work: Path
    kubeconfig: Path
    agents: dict[str, AgentProcess] = field(default_factory=dict)

    def start_agent(self, node: str, gpu: bool) -> AgentProcess:
        extra = []
        if gpu:
            profile = self.work / f"{node}.yaml"
            profile.write_text(yaml.safe_dump(GPU_PROFILE))
            extra = ["--hardware-profile", str(profile)]
        agent = AgentProcess(node, self.kubeconfig, self.work / node, self.work / f"{node}.log",
                             extra=extra)  # fmt: skip
        self.agents[node] = agent.start()
        return agent


@pytest.fixture(scope="module")
def fleet(
    control_plane: ControlPlane, kubectl: Kubectl, crds_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:  # fmt: skip
    work = tmp_path_factory.mktemp("fleet-changes")
    store, public_key = publish_mlp(work, variants="fp32,fp16")
    found = Fleet(store, public_key, work, control_plane.kubeconfig)
    for node in (GPU, CPU):
        create_node(kubectl, node)
        found.start_agent(node, gpu=node == GPU)
    for node in (GPU, CPU):
        wait_for(partial(hardware_reported, kubectl, node), f"{node}'s hardware report")
    try:
        yield found
    finally:
        for agent in found.agents.values():
            agent.kill(signal.SIGTERM)
        delete_nodes([GPU, CPU, LATE])


def create_node(kubectl: Kubectl, name: str) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": LABELS}}
    kubectl("apply", "-f", "-", input=json.dumps(node))


def hardware_reported(kubectl: Kubectl, node: str) -> bool:
    status = (edgenode(kubectl, node) or {}).get("status") or {}
    return bool(status.get("heartbeatTime") and status.get("hardware", {}).get("cpuCores"))


def manifest(namespace: str, fleet: Fleet, version: str = "1.0") -> str:
    return json.dumps(
        {
            "apiVersion": "edgerollout.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "m", "namespace": namespace},
            "spec": {
                "model": {"name": "m", "version": version,
                          "store": {"url": f"file://{fleet.store}",
                                    "publicKey": fleet.public_key}},
                "nodeSelector": {"matchLabels": LABELS},
                "strategy": {"maxUnavailable": 2, "minReadySeconds": 0},
            },
        }
    )  # fmt: skip


def deployment(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    result = kubectl("get", "mdep", "m", "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def selected(kubectl: Kubectl) -> set[str]:
    listing = json.loads(kubectl("get", "nodes", "-o", "json").stdout)
    return {
        n["metadata"]["name"]
        for n in listing["items"]
        if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in LABELS.items())
        and n["metadata"]["name"] in (GPU, CPU, LATE)
    }


def serving(kubectl: Kubectl, node: str, key: str) -> dict[str, Any] | None:
    models = ((edgenode(kubectl, node) or {}).get("status") or {}).get("models") or []
    return next((m for m in models if m["name"] == key), None)


def inconsistencies(kubectl: Kubectl, namespace: str, version: str) -> list[str]:
    """What differs between the status, the entries and what the agents serve ([] = none)."""
    body = deployment(kubectl, namespace)
    status = body.get("status") or {}
    key = f"{namespace}/m"
    wanted = selected(kubectl)
    found = fleet_support.entries(kubectl, namespace)
    problems = []
    if status.get("observedGeneration") != body["metadata"]["generation"]:
        problems.append(f"observedGeneration {status.get('observedGeneration')} behind")
    if set(found) != wanted:
        problems.append(f"entries on {sorted(found)}, selected {sorted(wanted)}")
    if (status.get("counts") or {}).get("targeted") != len(wanted):
        problems.append(f"counts {status.get('counts')} for {len(wanted)} selected nodes")
    if status.get("phase") != "Ready":
        problems.append(f"phase {status.get('phase')}: {status.get('message')}")
    for node, entry in found.items():
        have = serving(kubectl, node, key) or {}
        active = (have.get("phase"), have.get("activeVersion"), have.get("activeVariant"))
        if active != ("Ready", version, entry["variant"]) or entry["version"] != version:
            problems.append(f"{node}: asked {entry['version']}/{entry['variant']}, has {active}")
    for node in {GPU, CPU} - wanted:
        if serving(kubectl, node, key) is not None:
            problems.append(f"{node} still reports {key} though it is not selected")
    return problems


def settle(kubectl: Kubectl, namespace: str, version: str = "1.0") -> None:
    """The fleet is consistent within CONSISTENT_WITHIN seconds."""
    last: list[str] = []

    def check() -> bool:
        last[:] = inconsistencies(kubectl, namespace, version)
        return not last

    try:
        wait_for(check, "a consistent fleet", timeout=CONSISTENT_WITHIN)
    except AssertionError as error:
        raise AssertionError(f"{error}\ninconsistent: {last}") from None


class VariantWatch:
    """Every variant the operator asks a node for, sampled in the background."""

    def __init__(self, kubectl: Kubectl, namespace: str, node: str) -> None:
        self.kubectl, self.namespace, self.node = kubectl, namespace, node
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> VariantWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        key = f"{self.namespace}/m"
        while not self._stop.is_set():
            spec = (edgenode(self.kubectl, self.node) or {}).get("spec") or {}
            self.seen |= {e["variant"] for e in spec.get("models") or [] if e["name"] == key}
            self._stop.wait(0.1)


def test_a_deployment_deleted_from_agent_created_edgenodes_is_gone_and_its_name_reusable(
    operator: KopfRunner, kubectl: Kubectl, namespace: str, fleet: Fleet
) -> None:
    """The agents created their EdgeNodes with `spec.models: []`: removing the operator's entry
    from them was refused (422, `spec.models` null) and the deletion hung in Terminating."""
    kubectl("apply", "-f", "-", input=manifest(namespace, fleet))
    settle(kubectl, namespace)
    assert {n: e["variant"] for n, e in fleet_support.entries(kubectl, namespace).items()} == {
        GPU: "fp16",
        CPU: "fp32",
    }
    key = f"{namespace}/m"
    assert handlers.PLANNER.holds(key)
    kubectl("delete", "mdep", "m", "-n", namespace, f"--timeout={CONSISTENT_WITHIN:.0f}s")
    assert fleet_support.entries(kubectl, namespace) == {}
    assert not handlers.PLANNER.holds(key), "the planner's cache still holds the deleted one"
    wait_for(lambda: all(serving(kubectl, n, key) is None for n in (GPU, CPU)),
             "the agents to drop the model", timeout=CONSISTENT_WITHIN)  # fmt: skip
    assert not any(
        ((edgenode(kubectl, n) or {}).get("spec") or {}).get("models") for n in (GPU, CPU)
    )
    applied = kubectl("apply", "-f", "-", input=manifest(namespace, fleet)).stdout
    assert "created" in applied, applied
    settle(kubectl, namespace)
    kubectl("delete", "mdep", "m", "-n", namespace, f"--timeout={CONSISTENT_WITHIN:.0f}s")


def test_relabelled_and_deleted_nodes_leave_the_fleet_and_its_status_consistent(
    operator: KopfRunner, kubectl: Kubectl, namespace: str, fleet: Fleet
) -> None:
    """A node that stops matching the selector had its removal refused, which froze the status
    (observedGeneration behind, counts stale) for every later rollout."""
    kubectl("apply", "-f", "-", input=manifest(namespace, fleet))
    settle(kubectl, namespace)
    label = next(iter(LABELS))
    kubectl("label", "node", CPU, f"{label}-")
    settle(kubectl, namespace)
    kubectl("apply", "-f", "-", input=manifest(namespace, fleet, "2.0"))  # a later rollout
    settle(kubectl, namespace, "2.0")
    kubectl("label", "node", CPU, f"{label}={LABELS[label]}")
    settle(kubectl, namespace, "2.0")
    kubectl("delete", "node", CPU)
    settle(kubectl, namespace, "2.0")
    create_node(kubectl, CPU)
    settle(kubectl, namespace, "2.0")
    kubectl("delete", "mdep", "m", "-n", namespace, f"--timeout={CONSISTENT_WITHIN:.0f}s")


def test_an_edgenode_deleted_mid_rollout_is_reported_again_and_never_asked_for_fp32(
    operator: KopfRunner, kubectl: Kubectl, namespace: str, fleet: Fleet
) -> None:
    """Created again without its hardware report, the GPU node was planned from its labels
    (fp32) until its agent's next heartbeat. And a Node whose agent has not started yet waits
    for it, named in worstNodes, instead of getting a variant its labels suggest."""
    with (
        VariantWatch(kubectl, namespace, GPU) as gpu,
        VariantWatch(kubectl, namespace, LATE) as late,
    ):
        kubectl("apply", "-f", "-", input=manifest(namespace, fleet))
        settle(kubectl, namespace)
        kubectl("apply", "-f", "-", input=manifest(namespace, fleet, "2.0"))
        wait_for(lambda: (fleet_support.entries(kubectl, namespace).get(GPU) or {})
                 .get("version") == "2.0", "the GPU node asked for 2.0")  # fmt: skip
        kubectl("delete", "edgenode", GPU)
        wait_for(lambda: hardware_reported(kubectl, GPU), "the agent's report on the new object",
                 timeout=10)  # fmt: skip
        settle(kubectl, namespace, "2.0")
        create_node(kubectl, LATE)
        waiting = wait_for(lambda: _worst(kubectl, namespace, LATE), f"{LATE} in worstNodes")
        assert waiting["reason"] == "AwaitingHardwareReport", waiting
        assert "waiting for its agent's hardware report" in waiting["message"]
        assert LATE not in fleet_support.entries(kubectl, namespace)
        fleet.start_agent(LATE, gpu=True)
        settle(kubectl, namespace, "2.0")
    assert gpu.seen == {"fp16"}
    assert late.seen == {"fp16"}
    kubectl("delete", "mdep", "m", "-n", namespace, f"--timeout={CONSISTENT_WITHIN:.0f}s")


def _worst(kubectl: Kubectl, namespace: str, node: str) -> dict[str, Any] | None:
    status = deployment(kubectl, namespace).get("status") or {}
    return next((w for w in status.get("worstNodes") or [] if w["node"] == node), None)
