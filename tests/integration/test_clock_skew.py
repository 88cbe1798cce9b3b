"""Real agents whose clocks run 40 minutes behind or 5 minutes ahead (issue 14.5), the operator
and the apiserver.

The agent's wall clock is moved by the test seam EDGE_ROLLOUT_AGENT_TEST_CLOCK_OFFSET_SECONDS, so
every time it reports (heartbeatTime, readySince) is that far off. minReadySeconds must hold the
node for its full soak on the operator's clock, no less (behind) and no more (ahead), and the
operator must post a ClockSkew Warning Event on the EdgeNode.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support
from tests.integration.agent_fixtures import AgentProcess, model_status
from tests.integration.reporter import delete_nodes
from tests.integration.store_fixtures import build_mlp
from tests.support import Kubectl

CLI = [sys.executable, "-m", "edge_rollout.cli.main"]
SUFFIX = f"{random.randrange(10**5):05d}"
LABEL = "edgerollout.dev/test-fleet"
MIN_READY = 20
SKEWS = {-40 * 60: "40 minutes behind", 5 * 60: "5 minutes ahead of"}
operator = fleet_support.operator
wait_for = fleet_support.wait_for


def publish(work: Path) -> tuple[Path, str]:
    subprocess.run([*CLI, "keygen", str(work / "key")], check=True, capture_output=True)
    subprocess.run(
        [*CLI, "publish", str(build_mlp(work / "mlp.onnx", hidden=32)), "--name", "m",
         "--version", "1.0", "--store", str(work / "store"), "--key", str(work / "key"),
         "--variants", "fp32", "--runs", "2", "--samples", "2"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return work / "store", (work / "key.pub").read_text()


def deployment(namespace: str, store: Path, public_key: str, node: str) -> str:
    found = fleet_support.model_deployment(
        namespace, store, public_key, {LABEL: node}, maxUnavailable=1, minReadySeconds=MIN_READY
    )
    return json.dumps(found)


def succeeded(kubectl: Kubectl, namespace: str) -> int:
    return int((fleet_support.status(kubectl, namespace).get("counts") or {}).get("succeeded", 0))


@pytest.mark.parametrize("offset", sorted(SKEWS))
def test_soak_lasts_min_ready_seconds_on_the_operator_clock_whatever_the_agent_clock(
    offset: int,
    operator: KopfRunner,
    control_plane: ControlPlane,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, public_key = publish(tmp_path)
    node_name = f"skewed-{SUFFIX}-{offset + 3600}"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node_name, "labels": {LABEL: node_name}},
    }
    kubectl("apply", "-f", "-", input=json.dumps(node))
    monkeypatch.setenv("EDGE_ROLLOUT_AGENT_TEST_CLOCK_OFFSET_SECONDS", str(offset))
    agent = AgentProcess(
        node_name, control_plane.kubeconfig, tmp_path / "data", tmp_path / "agent.log"
    )
    try:
        with agent:
            kubectl("apply", "-f", "-", input=deployment(namespace, store, public_key, node_name))
            key = f"{namespace}/m"
            wait_for(
                lambda: (model_status(kubectl, node_name, key) or {}).get("phase") == "Ready",
                what="the agent Ready on 1.0",
            )
            ready_at = time.monotonic()
            wait_for(lambda: succeeded(kubectl, namespace) == 1, what="soaked", timeout=120)
            soaked_after = time.monotonic() - ready_at
            events = fleet_support.node_events(kubectl, node_name, "ClockSkew")
    finally:
        delete_nodes([node_name])
    assert MIN_READY - 3 <= soaked_after <= MIN_READY + 15, f"soaked {soaked_after:.1f} s"
    (event,) = events[:1]
    assert event["type"] == "Warning"
    assert SKEWS[offset] in event["message"], event["message"]
