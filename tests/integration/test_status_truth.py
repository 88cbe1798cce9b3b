"""The status never says more than is true, with the real apiserver and the operator in-process.

A rollback needs the stable release: when it was deleted from the store the abort says Failed
(StableReleaseUnavailable), not RolledBack, and the nodes are not asked back until it is
published again (scripted agents, an index-only store). An agent that dies is NoAgent, named with
when it was last heard from, not a node that timed out on the new version: it is not asked, not
counted by the abort criteria, and rejoins when it runs again (real agents, a real model).
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from edge_rollout.controller import handlers
from edge_rollout.store.reader import index_path
from edge_rollout.store.releases import ReleaseCache
from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support
from tests.integration.agent_fixtures import AgentProcess, edgenode
from tests.integration.reporter import ScriptedReporter, delete_nodes, fleet_hardware
from tests.integration.store_fixtures import publish_mlp
from tests.support import Kubectl

SUFFIX = f"{random.randrange(10**5):05d}"
SCRIPTED = {"edgerollout.dev/test-fleet": f"status-truth-scripted-{SUFFIX}"}
REAL = {"edgerollout.dev/test-fleet": f"status-truth-agents-{SUFFIX}"}
LIVE, DYING = f"st-live-{SUFFIX}", f"st-dying-{SUFFIX}"
AGENT_HEARTBEAT = 3
"""What the operator is told the agents' heartbeat is (they send one every 2 s ± 20%): an agent
silent for 4 of these (12 s) is NoAgent; the margin keeps a busy machine from losing one."""
DEADLINE = 10
"""progressDeadlineSeconds: a node asked and silent this long would time out (before the fix)."""
ALL_VARIANTS = ("fp32", "fp16", "int8", "int8-npu")
operator = fleet_support.operator
wait_for = fleet_support.wait_for


def manifest(
    namespace: str, url: str, public_key: str, version: str, labels: dict[str, str]
) -> str:
    return json.dumps(
        {
            "apiVersion": "edgerollout.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "m", "namespace": namespace},
            "spec": {
                "model": {"name": "m", "version": version,
                          "store": {"url": url, "publicKey": public_key}},
                "nodeSelector": {"matchLabels": labels},
                "strategy": {"maxUnavailable": 2, "minReadySeconds": 0,
                             "progressDeadlineSeconds": DEADLINE},
                "abort": {"criteria": [{"failureType": "All", "thresholdPercentage": 50,
                                        "minNumberOfExecutedNodes": 2}]},
            },
        }
    )  # fmt: skip


def status(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    out = kubectl("get", "mdep", "m", "-n", namespace, "-o", "json").stdout
    found: dict[str, Any] = json.loads(out).get("status") or {}
    return found


def conditions(found: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c["status"], c["reason"])
        for c in found.get("conditions", [])
        if c["type"] != "Warning"
    }


def events(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    out = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


# --- the stable release deleted from the store -----------------------------------------------


@pytest.fixture(scope="module")
def index_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return fleet_support.publish_index_store(tmp_path_factory.mktemp("store"), ["1.0", "2.0"])


@pytest.fixture(scope="module")
def scripted(crds_installed: None) -> Iterator[ScriptedReporter]:
    hardware = {f"st-{SUFFIX}-{name}": hw for name, hw in fleet_hardware(3).items()}
    reporter = ScriptedReporter(hardware, labels=SCRIPTED, delay=0.3)
    reporter.broken |= {f"2.0/{v}" for v in ALL_VARIANTS}
    reporter.start()
    yield reporter
    reporter.stop()
    delete_nodes(reporter.hardware)


def test_an_abort_without_the_stable_release_is_failed_until_it_is_published_again(
    operator: KopfRunner,
    kubectl: Kubectl,
    namespace: str,
    index_store: tuple[Path, str],
    scripted: ScriptedReporter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, public_key = index_store
    apply = partial(manifest, namespace, f"file://{root}", public_key, labels=SCRIPTED)
    kubectl("apply", "-f", "-", input=apply("1.0"))
    wait_for(lambda: status(kubectl, namespace).get("phase") == "Ready", what="1.0 Ready")
    stable = (root / index_path("m", "1.0")).parent
    shutil.move(stable, tmp_path / "1.0")
    # What a restarted operator knows: no release from before (the cache holds 1.0 for an hour).
    monkeypatch.setattr(handlers, "RELEASES", ReleaseCache())
    kubectl("apply", "-f", "-", input=apply("2.0"))

    failed = wait_for(
        lambda: (s := status(kubectl, namespace)).get("abortReason") and s, what="the abort"
    )
    assert failed["phase"] == "Failed", failed["message"]
    why = "StableReleaseUnavailable"
    assert conditions(failed) == {
        "Ready": ("False", why),
        "Progressing": ("False", why),
        "Degraded": ("True", why),
        "Reconciling": ("False", why),
        "Stalled": ("True", why),
    }
    message = failed["message"]
    assert message.startswith(f"modeldeployment {namespace}/m: rollout of 2.0 aborted:"), message
    assert f"the stable release m@1.0 cannot be loaded from spec.model.store (file://{root})" in (
        message
    )
    assert "publish m@1.0 to the store again" in message
    versions = partial(versions_of, kubectl, namespace)
    before = versions()
    assert sorted(before.values()) == ["1.0", "2.0", "2.0"], before  # the wave of 2, then abort
    time.sleep(3)  # three replans: nobody is asked back, for there is nothing to go back to
    assert versions() == before
    assert any(
        e["reason"] == "RolloutFailed" and e["message"] == message
        for e in events(kubectl, namespace)
    )
    assert not any(e["reason"] == "RolledBack" for e in events(kubectl, namespace))

    shutil.move(tmp_path / "1.0", stable)  # published again (failures are cached for 10 s)
    rolled = wait_for(
        lambda: (s := status(kubectl, namespace)).get("phase") == "RolledBack" and s,
        what="RolledBack once 1.0 is back",
        timeout=60,
    )
    assert conditions(rolled)["Degraded"] == ("True", "RolledBack")
    wait_for(lambda: set(versions().values()) == {"1.0"}, what="every node asked back to 1.0")


def versions_of(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    return {n: e["version"] for n, e in fleet_support.entries(kubectl, namespace).items()}


# --- an agent that dies ----------------------------------------------------------------------


@dataclass
class Agents:
    store: Path
    public_key: str
    work: Path
    kubeconfig: Path
    running: dict[str, AgentProcess] = field(default_factory=dict)

    def start(self, node: str) -> AgentProcess:
        agent = AgentProcess(node, self.kubeconfig, self.work / node, self.work / f"{node}.log")
        self.running[node] = agent.start()
        return agent


@pytest.fixture(scope="module")
def agents(
    control_plane: ControlPlane, kubectl: Kubectl, crds_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Agents]:  # fmt: skip
    work = tmp_path_factory.mktemp("status-truth")
    store, public_key = publish_mlp(work)
    found = Agents(store, public_key, work, control_plane.kubeconfig)
    for node in (LIVE, DYING):
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": REAL}}
        kubectl("apply", "-f", "-", input=json.dumps(body))
        found.start(node)
    for node in (LIVE, DYING):
        wait_for(partial(reported, kubectl, node), f"{node}'s hardware report")
    try:
        yield found
    finally:
        for agent in found.running.values():
            agent.kill(signal.SIGTERM)
        delete_nodes([LIVE, DYING])


def reported(kubectl: Kubectl, node: str) -> bool:
    found = (edgenode(kubectl, node) or {}).get("status") or {}
    return bool(found.get("heartbeatTime") and found.get("hardware", {}).get("cpuCores"))


def worst(found: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {w["node"]: (w["phase"], w["reason"]) for w in found.get("worstNodes", [])}


def test_a_dead_agent_is_no_agent_not_a_timed_out_node(
    operator: KopfRunner,
    kubectl: Kubectl,
    namespace: str,
    agents: Agents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(handlers.AGENT_HEARTBEAT, str(AGENT_HEARTBEAT))
    apply = partial(manifest, namespace, f"file://{agents.store}", agents.public_key, labels=REAL)
    kubectl("apply", "-f", "-", input=apply("1.0"))
    wait_for(lambda: status(kubectl, namespace).get("phase") == "Ready", what="1.0 Ready")

    agents.running[DYING].kill(signal.SIGKILL)
    gone = wait_for(
        lambda: (s := status(kubectl, namespace)).get("worstNodes") and s,
        what=f"{DYING} named once its agent is silent",
        timeout=60,
    )
    assert worst(gone) == {DYING: ("NoAgent", "AgentNotReporting")}
    (named,) = gone["worstNodes"]
    assert named["message"].startswith(f"node {DYING}: its agent has sent no heartbeat since ")
    assert "more than 12 s ago (4 heartbeats of 3 s)" in named["message"]
    assert gone["phase"] == "Degraded"
    assert conditions(gone)["Ready"] == ("True", "NoAgent")  # the live node runs 1.0

    kubectl("apply", "-f", "-", input=apply("2.0"))
    wait_for(
        lambda: (
            (s := status(kubectl, namespace)).get("observedGeneration") == 2
            and s["counts"]["succeeded"] == 1
        ),
        what=f"{LIVE} on 2.0",
    )
    # Past the progress deadline: the dead node was never asked, so it cannot time out, fall
    # back or count for the criteria (1 of 2 would be 50%, at the threshold).
    time.sleep(DEADLINE + 5)
    held = status(kubectl, namespace)
    assert held["phase"] == "Degraded", held["message"]
    assert not held.get("abortReason")
    assert worst(held) == {DYING: ("NoAgent", "AgentNotReporting")}
    assert "1/2 nodes on 2.0, 1 failed (1 with no agent)" in held["message"]
    assert fleet_support.entries(kubectl, namespace)[DYING]["version"] == "1.0"
    reasons = {e["reason"] for e in events(kubectl, namespace)}
    assert not reasons & {"VariantFallback", "RolloutAborted", "RolledBack"}, reasons
    assert "NodeHasNoAgent" in reasons

    agents.start(DYING)
    done = wait_for(
        lambda: (s := status(kubectl, namespace)).get("phase") == "Ready" and s,
        what=f"Ready once {DYING}'s agent is back",
        timeout=90,
    )
    assert done["counts"]["succeeded"] == 2
    assert done.get("worstNodes", []) == []
