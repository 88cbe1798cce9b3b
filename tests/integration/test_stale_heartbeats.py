"""An operator that starts while an agent is dead finds that agent's last heartbeat hours old. Its
age says when the agent died, not that the node's clock is behind: the node is NoAgent, with no
ClockSkew warning (a skew is measured only on a heartbeat seen arriving)."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest

from edge_rollout.controller import handlers
from edge_rollout.core.conditions import rfc3339
from tests.integration import fleet_support
from tests.integration.reporter import delete_nodes
from tests.support import Kubectl, kopf_operator

LABEL = "edgerollout.dev/test-fleet"
NODE = f"stale-{random.randrange(10**5):05d}"
HARDWARE = {"arch": "amd64", "cpuCores": 4, "memoryBytes": 4 << 30}


def test_a_heartbeat_hours_old_at_start_is_a_dead_agent_not_a_clock_behind(
    crds_installed: None,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(handlers.AGENT_HEARTBEAT, "2")
    monkeypatch.setenv("EDGE_ROLLOUT_REPLAN_SECONDS", "1")
    store, public_key = fleet_support.publish_index_store(tmp_path / "store", ["1.0"])
    old = rfc3339(dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {LABEL: NODE}}}
    edgenode = {"apiVersion": "edgerollout.dev/v1alpha1", "kind": "EdgeNode",
                "metadata": {"name": NODE}}  # fmt: skip
    status = {"status": {"heartbeatTime": old, "hardware": HARDWARE}}
    try:
        kubectl("apply", "-f", "-", input=json.dumps(node))
        kubectl("apply", "-f", "-", input=json.dumps(edgenode))
        kubectl("patch", "edgenode", NODE, "--subresource=status", "--type=merge",
                "-p", json.dumps(status))  # fmt: skip
        found = fleet_support.model_deployment(namespace, store, public_key, {LABEL: NODE})
        kubectl("apply", "-f", "-", input=json.dumps(found))
        with kopf_operator(fleet_support.OPERATOR_ARGS, timeout=120) as runner:
            found = fleet_support.wait_for(
                lambda: (s := fleet_support.status(kubectl, namespace)).get("worstNodes") and s,
                what=f"{NODE} named as silent",
                timeout=60,
            )
            events = fleet_support.node_events(kubectl, NODE, "ClockSkew")
    finally:
        delete_nodes([NODE])
    assert runner.exception is None, runner.output
    (named,) = found["worstNodes"]
    assert (named["node"], named["reason"]) == (NODE, "AgentNotReporting")
    assert named["message"].startswith(f"node {NODE}: its agent has sent no heartbeat since ")
    assert events == [], "a ClockSkew Warning for a dead agent"
