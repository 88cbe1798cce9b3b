"""`helm install` of charts/edge-rollout, unmodified, on the 3-node cluster: the operator Deployment
becomes Available, the agent DaemonSet runs on every edge node and each agent reports its node's
hardware in its EdgeNode. The release is tests/cluster/conftest.py's `installed` (session-wide)."""

from __future__ import annotations

import json
import time
from typing import Any

from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.hardware import CLUSTER_PROFILES

NAMESPACE = "edge-rollout"


def get(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_the_operator_deployment_becomes_available(cluster: Cluster, installed: str) -> None:
    deployment = get(cluster, "deployment", "-n", NAMESPACE, f"{installed}-edge-rollout-operator")
    conditions = {c["type"]: c["status"] for c in deployment["status"]["conditions"]}
    assert conditions["Available"] == "True", deployment["status"]


def test_an_agent_runs_on_every_edge_node(cluster: Cluster, installed: str) -> None:
    pods = get(cluster, "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=agent")
    running = {p["spec"]["nodeName"] for p in pods["items"] if p["status"]["phase"] == "Running"}
    assert running == {"node-1", "node-2", "node-3"}


def edgenodes_with_hardware(cluster: Cluster) -> dict[str, dict[str, Any]]:
    items = get(cluster, "edgenodes")["items"]
    return {
        n["metadata"]["name"]: n["status"]["hardware"]
        for n in items
        if n.get("status", {}).get("hardware", {}).get("profile")
    }


def test_each_agent_reports_its_nodes_hardware(cluster: Cluster, installed: str) -> None:
    deadline = time.monotonic() + 120
    reported = edgenodes_with_hardware(cluster)
    while len(reported) < 3 and time.monotonic() < deadline:
        time.sleep(2)
        reported = edgenodes_with_hardware(cluster)
    assert set(reported) == {"node-1", "node-2", "node-3"}, reported
    profiles = {name: hw["profile"] for name, hw in reported.items()}
    assert profiles == {
        "node-1": CLUSTER_PROFILES["npu"]["name"],
        "node-2": CLUSTER_PROFILES["gpu"]["name"],
        "node-3": CLUSTER_PROFILES["cpu"]["name"],
    }
    assert reported["node-2"]["accelerators"][0]["class"] == "gpu"
    assert all(hw["cpuCores"] > 0 and hw["arch"] for hw in reported.values())
