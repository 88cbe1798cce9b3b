"""`make demo-cluster`: the README demo's story in Pods, on a real 3-node cluster with kubelets.

The product's images (build/images) imported into every node, `helm install` of the chart, nginx
serving a signed store inside the cluster's network namespace. magika 1.0.0 lands with each node's
variant (NPU, GPU, CPU profiles), a fine-tuned 1.1.0 rolls out in waves as deltas while
`kubectl get pods -A -o wide` shows the Pods, and a broken 1.2.0 is rolled back by the nodes. Every
process, mount and namespace is removed at the end (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.cluster_story import (
    RELEASE_NAMESPACE,
    ClusterStore,
    Rollout,
    Store,
    Watch,
    diagnostics,
    install_release,
    prepare_store,
    profiles,
    watch,
)
from edge_rollout.testing.images import build_images

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "default"


class Clock:
    """Seconds per chapter, printed at the end."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.laps: list[tuple[str, float]] = []

    def lap(self, what: str) -> None:
        now = time.monotonic()
        self.laps.append((what, now - self.last))
        self.last = now


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def echo(line: str) -> None:
    print(line, flush=True)


def start(cluster: Cluster, clock: Clock) -> None:
    say("Images: build/images/{operator,agent}.oci.tar (built here, no container engine)")
    images = build_images(REPO / "build" / "images", log=echo)
    clock.lap("images (cached)")
    say("Starting the cluster: control plane + 3 nodes (containerd, runc, kubelet) in a netns")
    cluster.start()
    cluster.import_images(image.path for image in images.values())
    print(cluster.kubectl("get", "nodes", "-L", "edgerollout.dev/profile").stdout, end="")
    clock.lap("cluster up, images imported")


def install(workdir: Path, cluster: Cluster, public_key: str, clock: Clock) -> None:
    say("helm install er charts/edge-rollout (store.publicKey from `edge-rollout keygen`)")
    install_release(cluster, public_key, workdir)  # waits for every agent's EdgeNode
    print(cluster.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-o", "wide").stdout, end="")
    clock.lap("helm install, agents reporting")


def table(cluster: Cluster, rollout: Rollout) -> None:
    kinds = profiles(cluster)
    print(f"  {'NODE':8} {'PROFILE':8} {'VARIANT':8} {'ACTIVE':8} {'FETCHED':>10} {'REUSED':>10}")
    for node, (spec, got) in sorted(rollout.entries(cluster).items()):
        print(
            f"  {node:8} {kinds[node]:8} {spec.get('variant', '-'):8} "
            f"{got.get('activeVersion', '-'):8} {got.get('bytesFetched', 0):>10,} "
            f"{got.get('bytesReused', 0):>10,}"
        )


def roll(
    cluster: Cluster, rollout: Rollout, version: str, steps: list[dict[str, Any]], *until: str
) -> tuple[dict[str, Any], Watch]:
    rollout.apply(cluster, version, steps)
    return watch(cluster, rollout, version, until or ("Ready",), echo=echo)


def story(cluster: Cluster, store: Store, clock: Clock) -> None:
    rollout = Rollout(NAMESPACE, "magika", store.url, max_unavailable=1)
    say(f"kubectl apply: ModelDeployment magika 1.0.0 from {store.url} (prefer: size)")
    roll(cluster, rollout, "1.0.0", [{"setNodeCount": 1}, {"pause": {"duration": "2s"}}])
    say("Which node got which variant")
    table(cluster, rollout)
    clock.lap("1.0.0 rolled out")

    say("Rolling out 1.1.0 (a fine-tuned head) in waves: one node, 50%, everyone")
    shown: list[str] = []

    def pods_during(seen: Watch) -> None:
        if not shown and any(s.get("version") == "1.1.0" for s, _ in seen.snapshots[-1].values()):
            shown.append(cluster.kubectl("get", "pods", "-A", "-o", "wide").stdout)

    rollout.apply(cluster, "1.1.0", WAVES)
    status, _ = watch(cluster, rollout, "1.1.0", ("Ready",), echo=echo, on_tick=pods_during)
    say("kubectl get pods -A -o wide, during that rollout")
    print("".join(shown), end="")
    table(cluster, rollout)
    full = status["bytesFetched"] + status["bytesReused"]
    print(
        f"\n  fleet fetched {status['bytesFetched']:,} bytes of {full:,} "
        f"({100 * status['bytesFetched'] / max(full, 1):.1f}%): only the changed tensors"
    )
    clock.lap("1.1.0 rolled out")

    say("Rolling out 1.2.0: its head is broken; nodes check 1.1.0's golden vectors first")
    steps: list[dict[str, Any]] = [{"setNodeCount": 2}, {"pause": {"duration": "30s"}}]
    status, _ = roll(cluster, rollout, "1.2.0", steps, "RolledBack", "Failed", "Ready", "Degraded")
    print(f"\n  phase {status['phase']}: {status.get('abortReason', '')}")
    events = cluster.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector",
        "type=Warning,involvedObject.name=magika", "-o",
        "custom-columns=REASON:.reason,MESSAGE:.message",
    ).stdout  # fmt: skip
    print(events, end="")
    clock.lap("1.2.0 rolled back")


WAVES: list[dict[str, Any]] = [
    {"setNodeCount": 1},
    {"pause": {"duration": "3s"}},
    {"setNodePercent": 50},
    {"pause": {"duration": "3s"}},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "demo-cluster")
    args = parser.parse_args()
    shutil.rmtree(args.workdir / "nginx", ignore_errors=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    say("The store: magika 1.0.0, 1.1.0 and a broken 1.2.0, signed (build/cluster-story, cached)")
    prepared = prepare_store(REPO / "build" / "cluster-story", log=echo)
    clock.lap("store (cached)")
    cluster = Cluster(args.workdir / "cluster", nodes=3)
    cluster.stop()  # what an interrupted earlier run left
    try:
        start(cluster, clock)
        with ClusterStore(cluster, prepared, args.workdir / "nginx") as store:
            install(args.workdir, cluster, prepared.public_key, clock)
            story(cluster, store, clock)
    except KeyboardInterrupt:
        print("\ninterrupted")
    except (TimeoutError, RuntimeError) as error:
        print(diagnostics(cluster, NAMESPACE), file=sys.stderr)
        sys.exit(f"{error}\nlogs: {cluster.logs}")
    finally:
        say("Stopping the cluster (every process, mount, cgroup and namespace)")
        cluster.stop()
    say("Time per chapter")
    for what, seconds in clock.laps:
        print(f"  {seconds:6.1f} s  {what}")
    print(f"demo-cluster finished in {time.monotonic() - clock.start:.0f} s; nothing left running")


if __name__ == "__main__":
    main()
