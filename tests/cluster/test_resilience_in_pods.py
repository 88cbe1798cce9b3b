"""Pods die during a rollout: the agent Pod of a node deleted while it downloads, then the operator
Pod deleted while nodes are still in flight. Both come back, the rollout resumes and finishes, and
never more than maxUnavailable (1) node is in flight at once. The store is served at a limited
rate so that a download lasts long enough to interrupt."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.cluster_story import (
    Rollout,
    Store,
    Watch,
    agent_pods,
    diagnostics,
    get,
    in_flight,
    wait_until,
    watch,
)

NAMESPACE = "resilience"


@pytest.fixture(scope="module")
def rollout(cluster: Cluster, installed: str, store: Store) -> Iterator[Rollout]:
    cluster.kubectl("create", "namespace", NAMESPACE)
    yield Rollout(NAMESPACE, "magika", store.slow_url, max_unavailable=1)
    cluster.kubectl("delete", "mdep", "--all", "-n", NAMESPACE, "--wait=false", check=False)


def operator_pod(cluster: Cluster) -> dict[str, Any]:
    pods = get(cluster, "pods", "-n", "edge-rollout", "-l", "app.kubernetes.io/component=operator")
    live = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 1, [p["metadata"]["name"] for p in live]
    pod: dict[str, Any] = live[0]
    return pod


class Killer:
    """Deletes the agent Pod of the first node seen Downloading, then the operator Pod while a
    node is still in flight; remembers what it deleted."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.agent: tuple[str, str] | None = None  # (node, uid)
        self.operator: str = ""  # uid
        self.pods_during = ""

    def __call__(self, seen: Watch) -> None:
        entries = seen.snapshots[-1]
        if self.agent is None:
            downloading = [
                n for n, (_, got) in entries.items() if got.get("phase") == "Downloading"
            ]
            if downloading:
                self._delete_agent(downloading[0])
        elif not self.operator and in_flight(entries, "1.0.0"):
            pod = operator_pod(self.cluster)
            self.operator = pod["metadata"]["uid"]
            self.pods_during = self.cluster.kubectl("get", "pods", "-A", "-o", "wide").stdout
            self._delete("pod", pod["metadata"]["name"])

    def _delete_agent(self, node: str) -> None:
        pod = agent_pods(self.cluster)[node]
        self.agent = (node, pod["metadata"]["uid"])
        self._delete("pod", pod["metadata"]["name"])

    def _delete(self, *what: str) -> None:
        self.cluster.kubectl("delete", "-n", "edge-rollout", *what, "--wait=false")


def test_deleted_agent_and_operator_pods_come_back_and_the_rollout_finishes(
    cluster: Cluster, rollout: Rollout
) -> None:
    killer = Killer(cluster)
    rollout.apply(cluster, "1.0.0", [{"setNodePercent": 100}])
    try:
        status, seen = watch(cluster, rollout, "1.0.0", ("Ready",), timeout=300, on_tick=killer)
    except TimeoutError as error:
        pytest.fail(f"{error}\n{diagnostics(cluster, NAMESPACE)}")
    print("\n".join(seen.lines))
    print("kubectl get pods -A -o wide right before the operator Pod was deleted:")
    print(killer.pods_during)
    assert killer.agent is not None, f"no node was seen Downloading: {seen.lines}"
    assert killer.operator, f"no node was in flight after the agent restart: {seen.lines}"
    node, old_uid = killer.agent
    wait_until("a new agent Pod on " + node, lambda: node in agent_pods(cluster), timeout=60)
    assert agent_pods(cluster)[node]["metadata"]["uid"] != old_uid
    assert operator_pod(cluster)["metadata"]["uid"] != killer.operator
    entries = rollout.entries(cluster)
    assert {n: got.get("activeVersion") for n, (_, got) in entries.items()} == dict.fromkeys(
        entries, "1.0.0"
    )
    worst = max(len(in_flight(snapshot, "1.0.0")) for snapshot in seen.snapshots)
    assert worst <= rollout.max_unavailable, seen.lines
    assert status["phase"] == "Ready"
