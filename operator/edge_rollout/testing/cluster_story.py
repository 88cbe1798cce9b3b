"""The README demo's story on the real cluster: a signed store served by nginx inside the cluster's
network namespace (where the Pods reach it), magika published as 1.0.0, a fine-tuned 1.1.0 and a
broken 1.2.0, ModelDeployments applied with kubectl and watched through EdgeNode statuses.

Shared by the `cluster` test tier (tests/cluster) and `make demo-cluster` (hack/demo_cluster.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from edge_rollout.testing import cluster_network as network
from edge_rollout.testing import models
from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.cluster_node import HARDWARE_PROFILE_PATH
from edge_rollout.testing.controlplane import stop_process
from edge_rollout.testing.nginx import NGINX, NGINX_CONF

BIN = Path(sys.executable).parent
STORE_PORT = 8088
"""nginx's port on the apiserver's address inside the namespace (Pods reach it through their
node's bridge, like the apiserver)."""
SLOW_PORT = 8089
"""The same store at SLOW_RATE per connection, so a download lasts long enough to interrupt."""
SLOW_RATE = "150k"
MODEL = "magika"
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
EXPECTED_VARIANT = {"npu": "int8", "gpu": "fp16", "cpu": "int8"}
"""What `prefer: size` gives each of hardware.CLUSTER_PROFILES (the demo's choice)."""
STORY_REVISION = "1"
"""Raise when release_models() or publish() change what the store holds (the cache key)."""

Json = dict[str, Any]


# --- the store ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    """A signed store directory served by nginx in the cluster's namespace."""

    root: Path
    key: Path
    url: str
    slow_url: str
    access_log: Path

    @property
    def public_key(self) -> str:
        return self.key.with_name(self.key.name + ".pub").read_text()

    def bytes_served(self, since_line: int = 0) -> tuple[int, int]:
        """(body bytes of chunk and delta objects served after line `since_line`, lines now)."""
        lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
        total = 0
        for line in lines[since_line:]:
            match = re.search(r'"GET (\S+) [^"]*" \d{3} (\d+)', line)
            if match and not match.group(1).endswith(".json"):
                total += int(match.group(2))
        return total, len(lines)


def nginx_conf(root: Path, workdir: Path) -> str:
    """nginx.NGINX_CONF on the apiserver address, plus a rate-limited server on SLOW_PORT."""
    address = network.APISERVER_IP
    conf = NGINX_CONF.format(user="user root;", tmp=workdir, port=STORE_PORT, root=root)
    conf = conf.replace(f"listen 127.0.0.1:{STORE_PORT};", f"listen {address}:{STORE_PORT};")
    slow = (
        f"    server {{\n        listen {address}:{SLOW_PORT};\n        root {root};\n"
        f"        limit_rate {SLOW_RATE};\n        location / {{ }}\n    }}\n}}\n"
    )
    return conf.rstrip().removesuffix("}") + slow


class ClusterStore:
    """nginx serving `root` inside `cluster`'s network namespace; a context manager."""

    def __init__(self, cluster: Cluster, prepared: PreparedStore, workdir: Path) -> None:
        self.cluster, self.root, self.key = cluster, prepared.root, prepared.key
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Store:
        self.root.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_conf(self.root, self.workdir))
        argv = [NGINX, "-p", str(self.workdir), "-c", str(conf), "-g", "daemon off;"]
        self.proc = subprocess.Popen(
            network.in_netns(self.cluster.netns, argv),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait_listening()
        base = f"http://{network.APISERVER_IP}"
        return Store(
            self.root,
            self.key,
            f"{base}:{STORE_PORT}",
            f"{base}:{SLOW_PORT}",
            self.workdir / "access.log",
        )

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def _wait_listening(self) -> None:
        def connects() -> bool:
            try:
                with socket.create_connection((network.APISERVER_IP, STORE_PORT), timeout=0.5):
                    return True
            except OSError:
                return False

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = self.workdir / "error.log"
                raise RuntimeError(f"nginx exited: {log.read_text() if log.exists() else ''}")
            if network.call_in_netns(self.cluster.netns, connects):
                return
            time.sleep(0.2)
        raise RuntimeError(f"nginx did not listen on {network.APISERVER_IP}:{STORE_PORT} in 15 s")


def run(*argv: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def release_models(workdir: Path) -> dict[str, Path]:
    """magika's real classifier as 1.0.0, a fine-tuned head as 1.1.0, a broken head as 1.2.0."""
    workdir.mkdir(parents=True, exist_ok=True)
    original = models.magika_model_path(workdir / f"{MODEL}-1.0.0.onnx")
    if isinstance(original, str):
        raise RuntimeError(original)
    proto = onnx.load(str(original))
    changed = {"1.1.0": {"scale": 2e-2}, "1.2.0": {"scale": 3.0, "seed": 7}}
    paths = {"1.0.0": original}
    for version, kwargs in changed.items():
        paths[version] = workdir / f"{MODEL}-{version}.onnx"
        onnx.save(models.head_only(proto, **kwargs), str(paths[version]))  # type: ignore[arg-type]
    return paths


def publish(root: Path, key: Path, model: Path, version: str, *extra: str) -> str:
    """`edge-rollout publish` into the store directory; returns its output."""
    return run(
        str(BIN / "edge-rollout"), "publish", str(model), "--name", MODEL, "--version", version,
        "--store", str(root), "--key", str(key), "--runs", "3", *extra,
        env={**os.environ, "COLUMNS": "110"},
    )  # fmt: skip


@dataclass(frozen=True)
class PreparedStore:
    """A store directory holding the story's three releases and the key that signed them."""

    root: Path
    key: Path

    @property
    def public_key(self) -> str:
        return self.key.with_name(self.key.name + ".pub").read_text()


def inputs_digest() -> str:
    """What the published store depends on: the publisher's code, the model and this module."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(models.MAGIKA_VERSION.encode())
    digest.update(STORY_REVISION.encode())
    for sub in ("publishing", "content", "api", "testing/models.py"):
        for path in (
            sorted((package / sub).rglob("*.py")) if (package / sub).is_dir() else [package / sub]
        ):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def prepare_store(cache: Path, log: Callable[[str], None] = lambda _: None) -> PreparedStore:
    """The story's store under `cache/<inputs digest>`, published once (about a minute per
    release on a busy machine) and reused while the publisher's code is unchanged."""
    done = cache.resolve() / inputs_digest()
    if not (done / "published").exists():
        tmp = cache / f".{done.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "keys").mkdir(parents=True)
        run(str(BIN / "edge-rollout"), "keygen", str(tmp / "keys" / "store.key"))
        paths = release_models(tmp / "models")
        for version, extra in (("1.0.0", ()), ("1.1.0", ()), ("1.2.0", ("--golden-from", "1.1.0"))):
            log(f"edge-rollout publish {paths[version].name} --version {version} {' '.join(extra)}")
            publish(tmp / "store", tmp / "keys" / "store.key", paths[version], version, *extra)
        (tmp / "published").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        shutil.rmtree(done, ignore_errors=True)
        os.replace(tmp, done)
    return PreparedStore(done / "store", done / "keys" / "store.key")


# --- the release ----------------------------------------------------------------------------------

RELEASE = "er"
RELEASE_NAMESPACE = "edge-rollout"
CHART = Path(__file__).resolve().parents[3] / "charts" / "edge-rollout"


def chart_values(public_key: str) -> Json:
    """Values for the cluster: the store's key, each node's hardware profile file, a short
    heartbeat and replan interval (the demo's pace)."""
    return {
        "store": {"publicKey": public_key},
        "agent": {"hardwareProfile": {"hostPath": HARDWARE_PROFILE_PATH}, "heartbeatSeconds": 10},
        "operator": {"extraEnv": [{"name": "EDGE_ROLLOUT_REPLAN_SECONDS", "value": "2"}]},
    }


def install_release(cluster: Cluster, public_key: str, workdir: Path, chart: Path = CHART) -> None:
    """`helm install` of the chart, waited for (operator Available, an agent on every node)."""
    values = workdir / "values.json"
    values.write_text(json.dumps(chart_values(public_key)))
    cluster.helm(
        "install", RELEASE, str(chart), "-n", RELEASE_NAMESPACE, "--create-namespace",
        "-f", str(values), "--wait", "--timeout=4m", timeout=300,
    )  # fmt: skip
    # helm's --wait lets a DaemonSet's maxUnavailable agents be missing; wait for every one
    daemonset = f"daemonset/{RELEASE}-edge-rollout-agent"
    cluster.kubectl(
        "rollout", "status", daemonset, "-n", RELEASE_NAMESPACE, "--timeout=180s", timeout=200
    )  # fmt: skip
    nodes = {node.name for node in cluster.node_list}

    def every_agent_reported() -> bool:
        items = get(cluster, "edgenodes")["items"]
        seen = {n["metadata"]["name"] for n in items if n.get("status", {}).get("heartbeatTime")}
        return seen >= nodes

    wait_until(
        f"an EdgeNode report from the agent on each of {sorted(nodes)}", every_agent_reported
    )


# --- ModelDeployments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """One ModelDeployment of the story."""

    namespace: str
    name: str
    url: str
    max_unavailable: int = 1

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def document(self, version: str, steps: list[Json]) -> Json:
        return {
            "apiVersion": "edgerollout.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                # no publicKey: the operator's default, the chart's store.publicKey
                "model": {"name": MODEL, "version": version, "store": {"url": self.url}},
                "nodeSelector": {"matchLabels": {"edge": "true"}},
                "selection": {"prefer": "size"},
                "strategy": {
                    "steps": steps,
                    "maxUnavailable": self.max_unavailable,
                    "minReadySeconds": 2,
                    "progressDeadlineSeconds": 180,
                },
                "abort": {
                    "criteria": [
                        {
                            "failureType": "All",
                            "thresholdPercentage": 50,
                            "minNumberOfExecutedNodes": 1,
                        }
                    ],
                    "failureHandlingPolicy": "Rollback",
                },
            },
        }

    def apply(self, cluster: Cluster, version: str, steps: list[Json]) -> None:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(self.document(version, steps)))

    def status(self, cluster: Cluster) -> Json:
        got = get(cluster, "mdep", self.name, "-n", self.namespace)
        status: Json = got.get("status", {})
        return status

    def entries(self, cluster: Cluster) -> dict[str, tuple[Json, Json]]:
        """Per node: (its spec entry, its status entry) for this deployment."""
        found = {}
        for node in get(cluster, "edgenodes")["items"]:
            spec = {m["name"]: m for m in node.get("spec", {}).get("models", [])}
            status = {m["name"]: m for m in node.get("status", {}).get("models", [])}
            found[node["metadata"]["name"]] = (spec.get(self.key, {}), status.get(self.key, {}))
        return found


def get(cluster: Cluster, *args: str) -> Json:
    result: Json = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return result


def in_flight(entries: dict[str, tuple[Json, Json]], version: str) -> set[str]:
    """Nodes told to run `version` that are not yet serving it Ready (unavailable for it)."""
    return {
        node
        for node, (spec, status) in entries.items()
        if spec.get("version") == version
        and not (status.get("activeVersion") == version and status.get("phase") == "Ready")
    }


def progress_line(status: Json, entries: dict[str, tuple[Json, Json]]) -> str:
    nodes = " ".join(
        f"{node}:{got.get('activeVersion') or '-'}/{got.get('phase', '-')}"
        for node, (_, got) in sorted(entries.items())
    )
    return f"[{status.get('phase', '...')}] step {status.get('currentStepIndex', 0)}: {nodes}"


@dataclass
class Watch:
    """What a rollout went through: every distinct progress line and snapshot of entries."""

    lines: list[str] = field(default_factory=list)
    snapshots: list[dict[str, tuple[Json, Json]]] = field(default_factory=list)


def watch(
    cluster: Cluster,
    rollout: Rollout,
    version: str,
    until: tuple[str, ...],
    timeout: float = 240,
    on_tick: Callable[[Watch], None] | None = None,
    echo: Callable[[str], None] | None = None,
) -> tuple[Json, Watch]:
    """Poll until the deployment targets `version` in a phase of `until`; TimeoutError names
    the last progress line."""
    seen = Watch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = rollout.status(cluster)
        seen.snapshots.append(rollout.entries(cluster))
        line = progress_line(status, seen.snapshots[-1])
        if not seen.lines or seen.lines[-1] != line:
            seen.lines.append(line)
            if echo:
                echo(f"  {time.strftime('%H:%M:%S')} {line}")
        if on_tick:
            on_tick(seen)
        if status.get("targetVersion") == version and status.get("phase") in until:
            return status, seen
        time.sleep(0.5)
    raise TimeoutError(
        f"ModelDeployment {rollout.key} did not reach {until} for {version} in {timeout:.0f} s; "
        f"last: {seen.lines[-1] if seen.lines else 'no status'}"
    )


def wait_until(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def diagnostics(cluster: Cluster, namespace: str = "") -> str:
    """`kubectl get pods -A -o wide`, recent events, EdgeNodes and the product's logs."""
    parts = []
    for args in (
        ("get", "pods", "-A", "-o", "wide"),
        ("get", "events", "-A", "--sort-by=.lastTimestamp"),
        ("get", "edgenodes", "-o", "yaml"),
        *((("get", "mdep", "-n", namespace, "-o", "yaml"),) if namespace else ()),
        ("logs", "-n", "edge-rollout", "-l", "app.kubernetes.io/component=operator", "--tail=60"),
        ("logs", "-n", "edge-rollout", "-l", "app.kubernetes.io/component=agent", "--tail=40",
         "--prefix"),
    ):  # fmt: skip
        result = cluster.kubectl(*args, check=False)
        parts.append(f"$ kubectl {' '.join(args)}\n{result.stdout[-6000:]}{result.stderr[-2000:]}")
    return "\n".join(parts)


def node_models_dir(cluster: Cluster, node: str) -> Path:
    """The node's /var/lib/edge-rollout/models as the host sees it (the agent's hostPath)."""
    found = [n for n in cluster.node_list if n.name == node]
    return found[0].dir / "mounts" / "var/lib/edge-rollout/models"


def profiles(cluster: Cluster) -> dict[str, str]:
    """node name -> its hardware profile (npu, gpu, cpu)."""
    return {n.name: n.profile for n in cluster.node_list}


def agent_pods(cluster: Cluster, namespace: str = "edge-rollout") -> dict[str, Json]:
    """node -> the agent Pod running there (Running phase only)."""
    pods = get(cluster, "pods", "-n", namespace, "-l", "app.kubernetes.io/component=agent")
    return {
        p["spec"]["nodeName"]: p
        for p in pods["items"]
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }
