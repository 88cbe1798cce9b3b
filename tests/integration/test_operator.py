"""The operator against the real apiserver, a signed file:// store and a scripted fleet.

Covers: observedGeneration and conditions, an unverifiable release stalls without touching nodes,
a v1 -> v2 rollout in steps with a pause resumed by approval, an abort that rolls back on its
own, and an operator restart in the middle that resumes at the same step within maxUnavailable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from edge_rollout.store import keys
from edge_rollout.testing.controlplane import ControlPlane, free_port, stop_process
from tests.integration import fleet_support
from tests.integration.reporter import ScriptedReporter, delete_nodes, fleet_hardware
from tests.support import Kubectl, kopf_operator

FLEET = int(os.environ.get("EDGE_ROLLOUT_TEST_FLEET", "500"))
MAX_UNAVAILABLE = 50
FLEET_LABELS = {"edgerollout.dev/test-fleet": "operator"}
OPERATOR_ARGS = fleet_support.OPERATOR_ARGS
entries = fleet_support.entries
wait_for = fleet_support.wait_for


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A signed store with releases 1.0, 2.0 and 3.0 of model `m` (index only)."""
    return fleet_support.publish_index_store(
        tmp_path_factory.mktemp("store"), ["1.0", "2.0", "3.0"]
    )


operator = fleet_support.operator


@pytest.fixture(scope="module")
def fleet(crds_installed: None) -> Iterator[ScriptedReporter]:
    reporter = ScriptedReporter(fleet_hardware(FLEET), labels=FLEET_LABELS, delay=0.5)
    reporter.start()
    yield reporter
    reporter.stop()
    delete_nodes(reporter.hardware)


def manifest(namespace: str, store: tuple[Path, str], version: str, **strategy: Any) -> str:
    root, public_key = store
    document = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {
            "model": {
                "name": "m",
                "version": version,
                "store": {"url": f"file://{root}", "publicKey": public_key},
            },
            "nodeSelector": {"matchLabels": FLEET_LABELS},
            "strategy": {"maxUnavailable": MAX_UNAVAILABLE, "minReadySeconds": 0, **strategy},
            "abort": {"criteria": [{"thresholdPercentage": 30, "minNumberOfExecutedNodes": 5}]},
        },
    }
    return json.dumps(document)


def status(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    out = kubectl("get", "mdep", "m", "-n", namespace, "-o", "json").stdout
    result: dict[str, Any] = json.loads(out).get("status", {})
    return result


def phase_is(kubectl: Kubectl, namespace: str, *phases: str) -> Callable[[], Any]:
    def check() -> Any:
        current = status(kubectl, namespace)
        return current if current.get("phase") in phases else None

    return check


def test_unverifiable_release_stalls_and_touches_no_node(
    operator: KopfRunner, kubectl: Kubectl, namespace: str, store: tuple[Path, str]
) -> None:
    wrong_key = keys.public_key_pem(keys.generate_private_key().public_key())
    bad = json.loads(manifest(namespace, store, "1.0"))
    bad["spec"]["model"]["store"]["publicKey"] = wrong_key
    kubectl("apply", "-f", "-", input=json.dumps(bad))
    stalled = wait_for(
        lambda: status(kubectl, namespace).get("observedGeneration"), what="observedGeneration"
    )
    assert stalled == 1
    conditions = {c["type"]: c for c in status(kubectl, namespace)["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "UntrustedKey"
    assert "no signature by a trusted key" in conditions["Ready"]["message"]
    assert entries(kubectl, namespace) == {}


@pytest.mark.timeout(600)  # 320 nodes through four steps, a pause and a restart: 2-4 min here
def test_rollout_in_steps_pause_approval_and_restart(
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
    crds_installed: None,
) -> None:
    os.environ["EDGE_ROLLOUT_REPLAN_SECONDS"] = "1"
    steps = [{"setNodePercent": 10}, {"pause": {}}, {"setNodePercent": 50}, {"pause": {}}]
    with kopf_operator(OPERATOR_ARGS, timeout=300) as runner:
        kubectl("apply", "-f", "-", input=manifest(namespace, store, "1.0"))
        done = wait_for(phase_is(kubectl, namespace, "Ready"), what="v1 Ready")
        assert done["counts"]["succeeded"] == FLEET
        assert {v["variant"] for v in done["variants"]} == {"fp32", "fp16", "int8-npu"}
        kubectl("apply", "-f", "-", input=manifest(namespace, store, "2.0", steps=steps))
        wait_for(
            lambda: (
                status(kubectl, namespace).get("currentStepIndex") == 1
                and status(kubectl, namespace).get("targetVersion") == "2.0"
            ),
            what="pause 1",
        )
        on_v2 = [n for n, e in entries(kubectl, namespace).items() if e["version"] == "2.0"]
        assert len(on_v2) == FLEET // 10
    assert runner.exception is None, runner.output

    # Restarted operator: the pause still holds, nothing new is asked.
    with kopf_operator(OPERATOR_ARGS, timeout=300) as runner:
        time.sleep(3)
        assert status(kubectl, namespace)["currentStepIndex"] == 1
        assert (
            sum(e["version"] == "2.0" for e in entries(kubectl, namespace).values()) == FLEET // 10
        )
        approve = {"spec": {"strategy": {"approved": {"version": "2.0", "throughStep": 1}}}}
        kubectl("patch", "mdep", "m", "-n", namespace, "--type=merge", "-p", json.dumps(approve))
        wait_for(lambda: status(kubectl, namespace).get("currentStepIndex") == 3, what="pause 2")
        assert (
            sum(e["version"] == "2.0" for e in entries(kubectl, namespace).values()) == FLEET // 2
        )
    assert runner.exception is None, runner.output

    # Past the last pause; the operator is killed while nodes are updating and restarted.
    with fleet_support.InFlightMonitor(kubectl, namespace, "2.0") as monitor:
        with kopf_operator(OPERATOR_ARGS, timeout=300) as runner:
            approve["spec"]["strategy"]["approved"]["throughStep"] = 3
            kubectl("patch", "mdep", "m", "-n", namespace, "--type=merge",
                    "-p", json.dumps(approve))  # fmt: skip
            wait_for(lambda: on_version(kubectl, namespace, "2.0") > FLEET * 6 // 10,
                     what="60% on 2.0")  # fmt: skip
        assert runner.exception is None, runner.output
        restarted_at = on_version(kubectl, namespace, "2.0")
        if FLEET > 2 * MAX_UNAVAILABLE:  # a small fleet may finish before the restart
            assert restarted_at < FLEET
        with kopf_operator(OPERATOR_ARGS, timeout=300) as runner:
            done = wait_for(phase_is(kubectl, namespace, "Ready"), what="v2 Ready")
            assert done["stableVersion"] == "2.0"
            assert done["bytesFetched"] == 1000 * FLEET
            kubectl("wait", "--for=condition=Ready", "--timeout=10s", "mdep/m", "-n", namespace)
        assert runner.exception is None, runner.output
    assert monitor.samples > 5
    assert 0 < monitor.peak <= MAX_UNAVAILABLE


def on_version(kubectl: Kubectl, namespace: str, version: str) -> int:
    return sum(e["version"] == version for e in entries(kubectl, namespace).values())


@pytest.mark.timeout(600)  # first the 500 entries the steps test left are removed
def test_broken_release_aborts_and_rolls_back(
    operator: KopfRunner,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
) -> None:
    kubectl("apply", "-f", "-", input=manifest(namespace, store, "1.0"))
    wait_for(phase_is(kubectl, namespace, "Ready"), what="v1 Ready", timeout=300)
    fleet.broken |= {f"3.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu")}
    kubectl("apply", "-f", "-", input=manifest(namespace, store, "3.0"))
    rolled = wait_for(phase_is(kubectl, namespace, "RolledBack"), what="RolledBack")
    assert "abort threshold" in rolled["abortReason"]
    wait_for(
        lambda: all(e["version"] == "1.0" for e in entries(kubectl, namespace).values()),
        what="every node back on 1.0",
    )
    conditions = {c["type"]: c["status"] for c in rolled["conditions"]}
    # The module's earlier tests leave deployments of the same model on the same fleet: that is
    # the one warning this deployment may carry.
    warning = next((c for c in rolled["conditions"] if c["type"] == "Warning"), None)
    if conditions.pop("Warning", "False") == "True":
        assert warning is not None
        assert warning["reason"] == "SameModelOnNode", warning
    assert conditions == {
        "Ready": "False",
        "Progressing": "False",
        "Degraded": "True",
        "Reconciling": "False",
        "Stalled": "True",
    }
    events = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "RolloutAborted" in events


def test_operator_process_serves_metrics_and_liveness(
    crds_installed: None, control_plane: ControlPlane
) -> None:
    metrics, health = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_rollout.cli.main",
            "operator",
            "--standalone",
            f"--metrics-port={metrics}",
            "--metrics-address=127.0.0.1",
            f"--liveness=http://127.0.0.1:{health}/healthz",
        ],
        env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        body = wait_for(lambda: _get(f"http://127.0.0.1:{metrics}/metrics"), what="metrics")
        assert "# HELP edge_rollout_plans_total" in body
        assert "edge_rollout_edgenode_writes_total" in body
        assert wait_for(lambda: _get(f"http://127.0.0.1:{health}/healthz"), what="liveness")
    finally:
        stop_process(proc)


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""
