"""An agent Pod's real projected token (bound by the kubelet to the Pod and its node) may write its
own node's EdgeNode and is refused on another node's, with the admission policy's words."""

from __future__ import annotations

import json

from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.cluster_story import agent_pods

PATCH_STATUS = """
import json, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
node, value = sys.argv[1], sys.argv[2]
body = json.dumps({"status": {"agentVersion": value}}).encode()
request = urllib.request.Request(
    "https://kubernetes.default.svc/apis/edgerollout.dev/v1alpha1/edgenodes/%s/status" % node,
    data=body, method="PATCH",
    headers={"Authorization": "Bearer " + open(sa + "/token").read().strip(),
             "Content-Type": "application/merge-patch+json"})
context = ssl.create_default_context(cafile=sa + "/ca.crt")
try:
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        print(json.dumps({"code": response.status, "message": ""}))
except urllib.error.HTTPError as error:
    print(json.dumps({"code": error.code, "message": json.loads(error.read())["message"]}))
"""
"""Run by python3 in the agent container: PATCH an EdgeNode's status with the Pod's own token."""


def patch_from_agent(cluster: Cluster, on: str, target: str, value: str) -> dict[str, object]:
    pod = agent_pods(cluster)[on]["metadata"]["name"]
    result = cluster.kubectl(
        "exec", "-n", "edge-rollout", pod, "-c", "agent", "--",
        "python3", "-c", PATCH_STATUS, target, value,
    )  # fmt: skip
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


def agent_version(cluster: Cluster, node: str) -> str:
    return cluster.kubectl(
        "get", "edgenode", node, "-o", "jsonpath={.status.agentVersion}"
    ).stdout  # fmt: skip


def test_the_agent_on_one_node_is_refused_on_another_nodes_edgenode(
    cluster: Cluster, installed: str
) -> None:
    before = agent_version(cluster, "node-2")
    answer = patch_from_agent(cluster, "node-1", "node-2", "written-by-node-1")
    assert answer["code"] == 403, answer
    message = str(answer["message"])
    assert "ValidatingAdmissionPolicy" in message, message
    assert "the edge-rollout agent on node node-1 may only write EdgeNode node-1, not node-2" in (
        message
    )
    assert agent_version(cluster, "node-2") == before != "written-by-node-1"


def test_the_same_token_writes_its_own_nodes_edgenode(cluster: Cluster, installed: str) -> None:
    """The refusal above is the policy, not a token the apiserver did not accept."""
    answer = patch_from_agent(cluster, "node-1", "node-1", agent_version(cluster, "node-1"))
    assert answer["code"] == 200, answer
