"""The demo's story in Pods: magika published to a signed store that nginx serves inside the
cluster's network namespace; 1.0.0 lands with each node's variant, 1.1.0 rolls out in waves as
deltas, a broken 1.2.0 is caught by the nodes' golden vectors and rolled back without a download.
An application Pod serves inferences from the agent's `current` link and follows each switch."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from edge_rollout.testing import cluster_network as network
from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.cluster_story import (
    EXPECTED_VARIANT,
    Rollout,
    Store,
    diagnostics,
    get,
    node_models_dir,
    profiles,
    wait_until,
    watch,
)
from edge_rollout.testing.images import ImageArchive

NAMESPACE = "story"
APP_NODE = "node-3"
WAVES: list[dict[str, Any]] = [
    {"setNodeCount": 1},
    {"pause": {"duration": "3s"}},
    {"setNodePercent": 50},
    {"pause": {"duration": "3s"}},
]

APP = """
import http.server, json, os, time
import numpy as np, onnxruntime as ort
CURRENT = "/models/models/story/magika/current"
TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
         "tensor(int32)": np.int32, "tensor(int64)": np.int64}
STARTED, loaded = time.time(), {"dir": "", "session": None}

def session():
    # The contract (docs/agent.md): resolve `current` per request; load again when it moved.
    target = os.path.realpath(CURRENT)
    if target != loaded["dir"]:
        loaded["session"] = ort.InferenceSession(os.path.join(target, "model.onnx"),
                                                 providers=["CPUExecutionProvider"])
        loaded["dir"] = target
    return loaded["dir"], loaded["session"]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        directory, s = session()
        feed = {i.name: np.ones([d if isinstance(d, int) and d > 0 else 1 for d in i.shape],
                                TYPES[i.type]) for i in s.get_inputs()}
        out = s.run(None, feed)[0]
        body = json.dumps({"model": os.path.basename(directory), "pid": os.getpid(),
                           "started": STARTED,
                           "output": [round(float(x), 6) for x in out.ravel()[:8]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""


@pytest.fixture(scope="module")
def rollout(cluster: Cluster, installed: str, store: Store) -> Iterator[Rollout]:
    cluster.kubectl("create", "namespace", NAMESPACE)
    yield Rollout(NAMESPACE, "magika", store.url, max_unavailable=1)
    cluster.kubectl("delete", "mdep", "--all", "-n", NAMESPACE, "--wait=false", check=False)


def roll(cluster: Cluster, rollout: Rollout, version: str, steps: list[dict[str, Any]],
         until: tuple[str, ...] = ("Ready",), **kw: Any) -> tuple[dict[str, Any], Any]:  # fmt: skip
    rollout.apply(cluster, version, steps)
    try:
        return watch(cluster, rollout, version, until, **kw)
    except TimeoutError as error:
        pytest.fail(f"{error}\n{diagnostics(cluster, NAMESPACE)}")


def current_dirs(cluster: Cluster) -> dict[str, str]:
    """What each node's `current` link points at, read on the node's disk."""
    return {
        node: (node_models_dir(cluster, node) / NAMESPACE / "magika" / "current").readlink().name
        for node in profiles(cluster)
    }


def test_v1_lands_with_the_variant_each_nodes_hardware_gets(
    cluster: Cluster, rollout: Rollout, store: Store
) -> None:
    before, _ = store.bytes_served()
    status, seen = roll(
        cluster, rollout, "1.0.0", [{"setNodeCount": 1}, {"pause": {"duration": "2s"}}]
    )
    assert status["phase"] == "Ready", seen.lines
    expected = {node: EXPECTED_VARIANT[p] for node, p in profiles(cluster).items()}
    entries = rollout.entries(cluster)
    assert {node: spec["variant"] for node, (spec, _) in entries.items()} == expected
    assert {node: got["activeVersion"] for node, (_, got) in entries.items()} == dict.fromkeys(
        expected, "1.0.0"
    )
    assert current_dirs(cluster) == {node: f"1.0.0-{v}" for node, v in expected.items()}
    served, _ = store.bytes_served()
    assert served - before >= sum(got["bytesFetched"] for _, got in entries.values()) > 0


@pytest.fixture(scope="module")
def app(cluster: Cluster, rollout: Rollout, product_images: dict[str, ImageArchive]) -> str:
    """An application Pod on APP_NODE mounting the agent's directory read-only; its Pod IP."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "classifier", "namespace": NAMESPACE},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": APP_NODE},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532},
            "containers": [
                {
                    "name": "app",
                    "image": product_images["agent"].ref,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", APP],
                    "ports": [{"containerPort": 8000}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 2},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
                }
            ],
            "volumes": [
                {
                    "name": "models",
                    "hostPath": {"path": "/var/lib/edge-rollout", "type": "Directory"},
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    waited = cluster.kubectl(
        "wait", "-n", NAMESPACE, "pod/classifier", "--for=condition=Ready", "--timeout=90s",
        check=False,
    )  # fmt: skip
    if waited.returncode != 0:
        pytest.fail(f"the app Pod did not become Ready:\n{waited.stderr}\n{diagnostics(cluster)}")
    pod = get(cluster, "pod", "-n", NAMESPACE, "classifier")
    return str(pod["status"]["podIP"])


def ask(cluster: Cluster, ip: str) -> dict[str, Any]:
    def call() -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{ip}:8000/", timeout=20) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    return network.call_in_netns(cluster.netns, call)


def test_an_app_pod_serves_inferences_from_current(
    cluster: Cluster, rollout: Rollout, app: str
) -> None:
    answer = ask(cluster, app)
    assert answer["model"] == "1.0.0-int8"
    assert len(answer["output"]) > 0


def test_v2_rolls_out_in_waves_fetching_only_deltas(
    cluster: Cluster, rollout: Rollout, store: Store, app: str
) -> None:
    before, _ = store.bytes_served()
    shown: list[str] = []

    def show_pods(seen: Any) -> None:
        if not shown and any(
            spec.get("version") == "1.1.0" for spec, _ in seen.snapshots[-1].values()
        ):
            shown.append(cluster.kubectl("get", "pods", "-A", "-o", "wide").stdout)

    status, seen = roll(cluster, rollout, "1.1.0", WAVES, on_tick=show_pods)
    print("kubectl get pods -A -o wide during the 1.1.0 rollout:\n" + "".join(shown))
    print("\n".join(seen.lines))
    on_new = [line.count("1.1.0/") for line in seen.lines]
    assert on_new == sorted(on_new), f"a node went back: {seen.lines}"
    paused = [line.count("1.1.0/") for line in seen.lines if line.startswith("[Paused]")]
    assert sorted(set(paused)) == [1, 2], f"not in waves (1 node, 50% of 3, then all): {seen.lines}"
    assert on_new[-1] == 3, seen.lines
    assert all(  # one node at a time: maxUnavailable 1
        sum(1 for spec, got in snap.values() if spec.get("version") == "1.1.0"
            and got.get("activeVersion") != "1.1.0") <= 1
        for snap in seen.snapshots
    ), seen.lines  # fmt: skip
    full = status["bytesFetched"] + status["bytesReused"]
    assert 0 < status["bytesFetched"] < full / 10, status
    served, _ = store.bytes_served()
    assert served - before < full / 10, (served - before, full)
    assert current_dirs(cluster)[APP_NODE] == "1.1.0-int8"


def test_the_app_follows_the_switch_without_a_restart(
    cluster: Cluster, rollout: Rollout, app: str
) -> None:
    answer = ask(cluster, app)
    assert answer["model"] == "1.1.0-int8"
    pod = get(cluster, "pod", "-n", NAMESPACE, "classifier")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_a_broken_v3_is_caught_on_the_nodes_and_rolled_back_without_a_download(
    cluster: Cluster, rollout: Rollout, store: Store, app: str
) -> None:
    before = ask(cluster, app)
    steps: list[dict[str, Any]] = [{"setNodeCount": 2}, {"pause": {"duration": "30s"}}]
    until = ("RolledBack", "Failed", "Ready", "Degraded")
    status, seen = roll(cluster, rollout, "1.2.0", steps, until=until)
    assert status["phase"] == "RolledBack", seen.lines
    _, at_abort = store.bytes_served()
    events = cluster.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.name=magika",
        "-o", "jsonpath={range .items[*]}{.reason}: {.message}{'\\n'}{end}",
    ).stdout  # fmt: skip
    assert "TestVectorMismatch" in events + json.dumps(status), events

    def all_back() -> bool:
        entries = rollout.entries(cluster).values()
        settled = ("Ready", "RolledBack")
        return all(got.get("activeVersion") == "1.1.0" and got.get("phase") in settled
                   for _, got in entries)  # fmt: skip

    wait_until("every node back on 1.1.0", all_back, timeout=120)
    time.sleep(3)
    served_after, _ = store.bytes_served(since_line=at_abort)
    assert served_after == 0, "rolling back downloaded something"
    assert set(current_dirs(cluster).values()) <= {"1.1.0-int8", "1.1.0-fp16"}
    after = ask(cluster, app)
    assert after["model"] == "1.1.0-int8"
    assert (after["pid"], after["started"]) == (before["pid"], before["started"])
