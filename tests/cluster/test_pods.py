"""The cluster runs Pods: every node Ready with its profile, a Pod on each node, cluster DNS and the
apiserver's Service reachable from a Pod with its own service-account token (what Kopf needs)."""

from __future__ import annotations

import json

import pytest

from edge_rollout.testing import cluster_network
from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.cluster_node import PROFILE_LABEL
from edge_rollout.testing.images import ImageArchive

REACH_APISERVER = """
import json, socket, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
address = socket.gethostbyname("kubernetes.default.svc")
context = ssl.create_default_context(cafile=sa + "/ca.crt")
token = open(sa + "/token").read()
request = urllib.request.Request("https://kubernetes.default.svc/api/v1/namespaces/%s/pods"
    % open(sa + "/namespace").read(), headers={"Authorization": "Bearer " + token})
try:
    urllib.request.urlopen(request, context=context, timeout=10)
    status = 200
except urllib.error.HTTPError as error:
    status = error.code
print(json.dumps({"address": address, "status": status, "host": socket.gethostname()}))
"""
"""Resolve the Service name, verify the apiserver against kube-root-ca.crt, call it with the token
(403: authenticated as the Pod's service account, which may not list Pods)."""


def test_every_node_is_ready_with_its_own_profile(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = {
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    }
    profiles = {n["metadata"]["labels"][PROFILE_LABEL] for n in nodes}
    assert ready == {"node-1", "node-2", "node-3"}
    assert profiles == {"npu", "gpu", "cpu"}
    assert all(n["metadata"]["labels"]["edge"] == "true" for n in nodes)


def pod(name: str, node: str, image: str, code: str) -> dict[str, object]:
    """A one-shot Pod pinned to `node` by the scheduler (nodeSelector), running Python."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", code],
                    "securityContext": {"allowPrivilegeEscalation": False},
                }
            ],
        },
    }


def run_pod(cluster: Cluster, namespace: str, manifest: dict[str, object]) -> str:
    """Create, wait until Succeeded, return its log (read from the kubelet)."""
    name = manifest["metadata"]["name"]  # type: ignore[index]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    waited = cluster.kubectl(
        "wait", "-n", namespace, f"pod/{name}", "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=120s", check=False,
    )  # fmt: skip
    if waited.returncode != 0:
        described = cluster.kubectl("describe", "-n", namespace, f"pod/{name}").stdout
        pytest.fail(f"pod {name} did not succeed:\n{waited.stderr}\n{described}")
    return cluster.kubectl("logs", "-n", namespace, f"pod/{name}").stdout


@pytest.mark.parametrize("node", ["node-1", "node-2", "node-3"])
def test_a_pod_on_each_node_reaches_the_apiserver_by_its_service_name(
    cluster: Cluster,
    cluster_namespace: str,
    product_images: dict[str, ImageArchive],
    node: str,
) -> None:
    manifest = pod(f"reach-{node}", node, product_images["agent"].ref, REACH_APISERVER)
    report = json.loads(run_pod(cluster, cluster_namespace, manifest))
    placed = cluster.kubectl(
        "get", "pod", "-n", cluster_namespace, f"reach-{node}", "-o", "jsonpath={.spec.nodeName}"
    ).stdout
    assert placed == node
    assert report["address"] == cluster_network.SERVICE_CIDR.replace(".0/24", ".1")
    assert report["status"] == 403, "the apiserver did not see the Pod's service-account token"
    assert report["host"] == f"reach-{node}"
