"""Key rotation end to end, with real agents, the real apiserver and the operator (issue 14.7).

Two agents serve a small MLP published by the CLI. Release 1.0 is signed by key A; after the
deployment trusts A and B, 2.0 is published with B (reading 1.0, its delta base and golden
source, under A) and carries 1.0's golden vectors, so no node passes its test vectors and the
abort rolls the fleet back to 1.0, a release only A signed. Then the documented procedure ends:
1.0 is countersigned with B and A leaves the trust set. A deployment trusting only a key that
signed nothing is refused with UntrustedKey, naming the key ids found and trusted, and removing
the old key while the stable release is signed by it alone stops the next rollout before it starts.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from edge_rollout.store import keys
from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support
from tests.integration.agent_fixtures import AgentProcess, edgenode
from tests.integration.reporter import delete_nodes
from tests.integration.store_fixtures import build_mlp
from tests.integration.test_health_truth import status
from tests.support import Kubectl

CLI = [sys.executable, "-m", "edge_rollout.cli.main"]
SUFFIX = f"{random.randrange(10**5):05d}"
LABEL = "edgerollout.dev/test-fleet"
GROUP = f"key-rotation-{SUFFIX}"
NODES = [f"kr-{SUFFIX}-{i}" for i in range(2)]
PUBLISH = ["--variants", "fp32", "--runs", "2", "--samples", "2"]
operator = fleet_support.operator
wait_for = fleet_support.wait_for


@dataclass
class Fleet:
    work: Path
    store: Path

    def pem(self, name: str) -> str:
        return (self.work / f"{name}.pub").read_text()

    def key_id(self, name: str) -> str:
        return keys.key_id(keys.load_public_key(self.pem(name)))

    def signers(self, version: str) -> list[str]:
        sig = self.store / "models" / "m" / version / "index.json.sig"
        return keys.named_ids(sig.read_bytes())


def cli(*args: str) -> str:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def fleet(
    control_plane: ControlPlane, kubectl: Kubectl, crds_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:  # fmt: skip
    work = tmp_path_factory.mktemp("key-rotation")
    for name in ("a", "b", "c"):
        cli("keygen", str(work / name))
    found = Fleet(work, work / "store")
    model = build_mlp(work / "mlp-1.onnx", seed=0)
    cli("publish", str(model), "--name", "m", "--version", "1.0", "--store", str(found.store),
        "--key", str(work / "a"), *PUBLISH)  # fmt: skip
    # For the early removal case: 1.1 by A alone, and a good 1.2 by B alone.
    cli("publish", str(model), "--name", "m", "--version", "1.1", "--store", str(found.store),
        "--key", str(work / "a"), "--base-version", "", *PUBLISH)  # fmt: skip
    cli("publish", str(model), "--name", "m", "--version", "1.2", "--store", str(found.store),
        "--key", str(work / "b"), "--base-version", "", *PUBLISH)  # fmt: skip
    agents = []
    for node in NODES:
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node, "labels": {LABEL: GROUP}}}  # fmt: skip
        kubectl("apply", "-f", "-", input=json.dumps(body))
        agent = AgentProcess(node, control_plane.kubeconfig, work / node, work / f"{node}.log")
        agents.append(agent.start())
    for node in NODES:
        wait_for(partial(_reported, kubectl, node), f"{node}'s hardware report", timeout=60)
    try:
        yield found
    finally:
        for agent in agents:
            agent.kill(signal.SIGTERM)
        delete_nodes(NODES)


def _reported(kubectl: Kubectl, node: str) -> bool:
    status = (edgenode(kubectl, node) or {}).get("status") or {}
    return bool(status.get("heartbeatTime") and status.get("hardware", {}).get("cpuCores"))


def apply(kubectl: Kubectl, namespace: str, fleet: Fleet, version: str, trusted: list[str]) -> None:
    """The deployment at `version`, trusting the named keys (`release-<name>`)."""
    body = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {
            "model": {"name": "m", "version": version, "store": {
                "url": f"file://{fleet.store}",
                "trustedKeys": [{"id": f"release-{n}", "publicKey": fleet.pem(n)}
                                for n in trusted]}},
            "nodeSelector": {"matchLabels": {LABEL: GROUP}},
            "strategy": {"maxUnavailable": 2, "minReadySeconds": 0,
                         "progressDeadlineSeconds": 600},
            "abort": {"criteria": [{"thresholdPercentage": 50}],
                      "failureHandlingPolicy": "Rollback"},
        },
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(body))


def served(kubectl: Kubectl, namespace: str) -> dict[str, tuple[str, str]]:
    """node -> (phase, activeVersion) its agent reports for the deployment."""
    found = {}
    for node in NODES:
        models = ((edgenode(kubectl, node) or {}).get("status") or {}).get("models") or []
        for m in models:
            if m["name"] == f"{namespace}/m":
                found[node] = (m.get("phase", ""), m.get("activeVersion", ""))
    return found


def ready_on(kubectl: Kubectl, namespace: str, version: str) -> bool:
    found = status(kubectl, namespace)
    nodes = served(kubectl, namespace)
    return (
        found.get("phase") == "Ready"
        and found.get("stableVersion") == version
        and len(nodes) == len(NODES)
        and all(v == ("Ready", version) for v in nodes.values())
    )


def test_a_new_key_is_added_a_bad_release_by_it_rolls_back_to_one_only_the_old_key_signed(
    operator: KopfRunner, kubectl: Kubectl, namespace: str, fleet: Fleet
) -> None:
    apply(kubectl, namespace, fleet, "1.0", ["a"])
    wait_for(partial(ready_on, kubectl, namespace, "1.0"), "1.0 Ready under key A", timeout=120)
    apply(kubectl, namespace, fleet, "1.0", ["a", "b"])  # step 1: trust the new key too
    wait_for(lambda: all(len(e.get("trustedKeys") or []) == 2
                         for e in fleet_support.entries(kubectl, namespace).values()),
             "the entries to carry both keys", timeout=30)  # fmt: skip
    # Step 2: publish with the new key. 1.0 (the delta base and golden source) is A's alone.
    model = build_mlp(fleet.work / "mlp-2.onnx", seed=1)
    cli("publish", str(model), "--name", "m", "--version", "2.0", "--store", str(fleet.store),
        "--key", str(fleet.work / "b"), "--public-key", str(fleet.work / "a.pub"),
        "--base-version", "1.0", "--golden-from", "1.0", *PUBLISH)  # fmt: skip
    assert fleet.signers("1.0") == [fleet.key_id("a")]
    assert fleet.signers("2.0") == [fleet.key_id("b")]
    apply(kubectl, namespace, fleet, "2.0", ["a", "b"])  # step 3: roll
    lies: list[Any] = []

    def rolled_back() -> bool:
        found = status(kubectl, namespace)
        nodes = served(kubectl, namespace)
        back = len(nodes) == len(NODES) and all(
            p in ("Ready", "RolledBack") and v == "1.0" for p, v in nodes.values()
        )
        if found.get("phase") == "RolledBack" and not back:
            lies.append((found.get("message"), nodes))
        return found.get("phase") == "RolledBack" and back

    wait_for(rolled_back, "the fleet back on 1.0 (signed by A only)", timeout=180)
    found = status(kubectl, namespace)
    assert "abort threshold" in found["abortReason"], found
    assert found["stableVersion"] == "1.0"
    assert {e["version"] for e in fleet_support.entries(kubectl, namespace).values()} == {"1.0"}
    # RolledBack may be written a replan before the last agent reports it serves 1.0 again; it
    # must never be written while an agent serves another version for long.
    assert all(v != "2.0" or p != "Ready" for _, n in lies for p, v in n.values()), lies
    # Step 4: countersign what the fleet may still roll back to, then drop the old key.
    old = f"release-a={fleet.work / 'a.pub'}"
    out = cli("store", "sign", str(fleet.store), "--key", str(fleet.work / "b"),
              "--public-key", old, "--release", "m@1.0")  # fmt: skip
    assert f"m@1.0: signed by release-a ({fleet.key_id('a')}); countersigned" in out, out
    assert fleet.signers("1.0") == [fleet.key_id("a"), fleet.key_id("b")]
    apply(kubectl, namespace, fleet, "1.0", ["b"])
    wait_for(lambda: all([k["id"] for k in e.get("trustedKeys") or []] == ["release-b"]
                         for e in fleet_support.entries(kubectl, namespace).values()),
             "the entries to trust B alone", timeout=30)  # fmt: skip
    wait_for(partial(ready_on, kubectl, namespace, "1.0"), "1.0 Ready under key B", timeout=60)
    verified = cli("store", "verify", str(fleet.store), "--public-key", str(fleet.work / "b.pub"),
                   "--release", "m@1.0")  # fmt: skip
    assert f"m@1.0: index signed by b ({fleet.key_id('b')})" in verified, verified
    kubectl("delete", "mdep", "m", "-n", namespace, "--timeout=60s")


def test_a_release_signed_only_by_an_untrusted_key_is_refused_with_both_key_ids(
    operator: KopfRunner, kubectl: Kubectl, namespace: str, fleet: Fleet
) -> None:
    apply(kubectl, namespace, fleet, "1.0", ["c"])
    stalled = wait_for(lambda: status(kubectl, namespace).get("observedGeneration"),
                       "observedGeneration")  # fmt: skip
    assert stalled == 1
    conditions = {c["type"]: c for c in status(kubectl, namespace)["conditions"]}
    ready = conditions["Ready"]
    assert conditions["Stalled"]["status"] == "True"
    assert ready["reason"] == "UntrustedKey", ready
    message = ready["message"]
    assert "no signature by a trusted key" in message, message
    assert f"signed by key id(s) {fleet.key_id('a')}" in message, message
    assert f"trusted: release-c ({fleet.key_id('c')})" in message, message
    assert "spec.model.store.trustedKeys" in message
    assert "edge-rollout store sign" in message
    assert fleet_support.entries(kubectl, namespace) == {}
    kubectl("delete", "mdep", "m", "-n", namespace, "--timeout=60s")


def test_the_old_key_removed_before_the_stable_release_is_countersigned_stalls_the_rollout(
    operator: KopfRunner, kubectl: Kubectl, namespace: str, fleet: Fleet
) -> None:
    """1.1 (signed by A alone) is stable; 1.2 (by B) is rolled out trusting only B. An abort could
    not return to 1.1 (the nodes would stay on 1.2 while the status said RolledBack), so the
    rollout does not start; trusting A again lets it go on."""
    apply(kubectl, namespace, fleet, "1.1", ["a"])
    wait_for(partial(ready_on, kubectl, namespace, "1.1"), "1.1 Ready under key A", timeout=120)
    apply(kubectl, namespace, fleet, "1.2", ["b"])
    ready = wait_for(lambda: next((c for c in status(kubectl, namespace).get("conditions", [])
                                   if c["type"] == "Ready" and c["reason"] == "UntrustedKey"),
                                  None), "UntrustedKey", timeout=30)  # fmt: skip
    assert "the stable version 1.1, which an abort rolls back to" in ready["message"], ready
    assert f"signed by key id(s) {fleet.key_id('a')}" in ready["message"], ready
    assert status(kubectl, namespace)["phase"] == "Degraded"
    assert {e["version"] for e in fleet_support.entries(kubectl, namespace).values()} == {"1.1"}
    assert set(served(kubectl, namespace).values()) == {("Ready", "1.1")}
    apply(kubectl, namespace, fleet, "1.2", ["a", "b"])
    wait_for(partial(ready_on, kubectl, namespace, "1.2"), "1.2 Ready under A and B", timeout=120)
    kubectl("delete", "mdep", "m", "-n", namespace, "--timeout=60s")


@pytest.mark.parametrize(
    ("keys_", "fragment"),
    [
        pytest.param([{"id": "k", "publicKey": "x"}, {"id": "k", "publicKey": "y"}],
                     "trustedKeys ids must be unique", id="duplicate-id"),
        pytest.param([{"id": f"k{i}", "publicKey": "x"} for i in range(5)],
                     "at most 4 keys", id="too-many"),
        pytest.param([{"id": "Old Key", "publicKey": "x"}], "like release-2026", id="bad-id"),
    ],
)  # fmt: skip
def test_the_apiserver_refuses_a_bad_trust_set_saying_what_to_fix(
    kubectl: Kubectl, crds_installed: None, namespace: str, keys_: list[Any], fragment: str
) -> None:
    body = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"model": {"name": "m", "version": "1.0",
                           "store": {"url": "file:///srv/store", "trustedKeys": keys_}}},
    }  # fmt: skip
    result = kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0, "accepted"
    assert fragment in result.stderr, result.stderr
