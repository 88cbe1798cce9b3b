"""One node of the multi-node cluster: containerd + runc + kubelet in a mount namespace of its own.

The mount namespace hides the host's sysctls the kubelet would change (files bind-mounted over
/proc/sys) and gives each node its own copy of the paths kubelet, containerd, CNI and the chart
hard-code (/var/lib/kubelet, /var/log/pods, /var/lib/edge-rollout, ...). It must not write anything
outside the node's directory except empty mount points it records for removal.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from edge_rollout.testing import cluster_network as network
from edge_rollout.testing.cluster_images import PAUSE_IMAGE
from edge_rollout.testing.hardware import CLUSTER_PROFILES

PROFILES = ("npu", "gpu", "cpu")
"""Hardware profile label values, one per node in turn (`edgerollout.dev/profile`)."""

PROFILE_LABEL = "edgerollout.dev/profile"

SOCKET_DIR = Path("/run/edge-rollout-sockets")
"""containerd sockets of every cluster here, named by cluster and node (`cluster down` removes a
cluster's own)."""
SHARED_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/var/log/pods",
    "/var/log/containers",
    "/run/containerd",
    "/var/lib/edge-rollout",
    "/etc/edge-rollout",
)
"""Hard-coded paths each node gets its own copy of (the last two are the chart's hostPaths)."""

HARDWARE_PROFILE_PATH = "/etc/edge-rollout/hardware-profile.yaml"
"""Where each node holds its hardware profile (set `agent.hardwareProfile.hostPath` to it)."""


KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
"""The values the kubelet insists on; it finds them in files over /proc/sys and changes nothing."""


@dataclass(frozen=True)
class Node:
    """Where node `index` lives: its name, address, profile and state directory."""

    index: int
    workdir: Path
    cgroup_root: str

    @property
    def name(self) -> str:
        return f"node-{self.index + 1}"

    @property
    def ip(self) -> str:
        return network.node_ip(self.index)

    @property
    def profile(self) -> str:
        return PROFILES[self.index % len(PROFILES)]

    @property
    def dir(self) -> Path:
        return self.workdir / self.name

    @property
    def socket(self) -> Path:
        """containerd's socket: under SOCKET_DIR, as a path in the node's directory can pass
        the 104 bytes containerd allows a unix socket path (pytest-xdist's temp paths do)."""
        return SOCKET_DIR / f"{self.cgroup_root}-{self.name}.sock"

    @property
    def pods_cgroup(self) -> str:
        return f"{self.cgroup_root}/{self.name}"

    @property
    def daemons_cgroup(self) -> str:
        return f"{self.cgroup_root}/{self.name}-daemons"

    @property
    def labels(self) -> dict[str, str]:
        return {PROFILE_LABEL: self.profile, "edge": "true"}

    def ctr(self) -> list[str]:
        """`ctr` aimed at this node's containerd, in the namespace the kubelet uses."""
        return ["ctr", f"--address={self.socket}", "--namespace=k8s.io"]


def prepare(node: Node) -> None:
    """The node's directories, containerd and CNI configuration and sysctl files."""
    for sub in ("containerd", "cni/net.d", "cni/networks", "sysctl", "volume-plugins", "pki"):
        (node.dir / sub).mkdir(parents=True, exist_ok=True)
    SOCKET_DIR.mkdir(mode=0o700, exist_ok=True)
    for path in SHARED_PATHS:
        (node.dir / "mounts" / path.strip("/")).mkdir(parents=True, exist_ok=True)
    (node.dir / "containerd.toml").write_text(containerd_config(node))
    conflist = network.cni_config(node.index, node.dir / "cni" / "networks")
    (node.dir / "cni" / "net.d" / "10-edge-rollout.conflist").write_text(json.dumps(conflist))
    (node.dir / "resolv.conf").write_text("# the cluster has no upstream DNS\n")
    for key, value in KUBELET_SYSCTLS.items():
        (node.dir / "sysctl" / key.replace("/", ".")).write_text(value + "\n")
    profile = node.dir / "mounts" / HARDWARE_PROFILE_PATH.strip("/")
    profile.write_text(json.dumps(CLUSTER_PROFILES[node.profile], indent=2))  # JSON is YAML


def mount_script(node: Node, netns: str) -> str:
    """Shell run in the node's fresh mount namespace: containerd's directory in memory, other
    netns mounts dropped, per-node copies over the shared paths, files over kubelet sysctls."""
    containerd = shlex.quote(str(node.dir / "containerd"))
    # containerd's root and state in memory, seen by this node only: gone with the namespace,
    # so `down` deletes no unpacked image from disk (minutes on this machine's disk).
    lines = ["set -e", f"mount -t tmpfs -o mode=0711 edge-rollout-{node.name} {containerd}"]
    lines.append(
        f"for m in {network.NETNS_DIR}/*; do "
        f'[ "$m" = {network.NETNS_DIR / netns} ] || umount "$m" 2>/dev/null || true; done'
    )
    for path in SHARED_PATHS:
        source = node.dir / "mounts" / path.strip("/")
        lines.append(f"mount --bind {shlex.quote(str(source))} {path}")
    for key in KUBELET_SYSCTLS:
        source = node.dir / "sysctl" / key.replace("/", ".")
        lines.append(f"mount --bind {shlex.quote(str(source))} /proc/sys/{key}")
    return "\n".join(lines)


def containerd_config(node: Node) -> str:
    """containerd 1.6 config: root, state and sockets under the node's directory."""
    d = node.dir
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "{node.socket}"
[ttrpc]
  address = "{node.socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE here: runc cannot set the pause container's negative oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni/net.d"
"""


def kubelet_config(node: Node, ca_file: Path) -> dict[str, object]:
    """KubeletConfiguration for cgroup v1 without CAP_SYS_RESOURCE, every path per node."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "healthzBindAddress": node.ip,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": "/" + node.pods_cgroup,
        "failCgroupV1": False,
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "protectKernelDefaults": False,
        "clusterDNS": [network.DNS_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(node.dir / "resolv.conf"),
        "volumePluginDir": str(node.dir / "volume-plugins"),
        # Imported images cannot be pulled back: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%"},
        "maxPods": 30,
        "rotateCertificates": False,
        "syncFrequency": "10s",
    }


def kubelet_args(node: Node, bin_dir: Path, kubeconfig: Path) -> list[str]:
    labels = ",".join(f"{k}={v}" for k, v in node.labels.items())
    return [
        str(bin_dir / "kubelet"),
        f"--config={node.dir / 'kubelet.json'}",
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.ip}",
        f"--node-labels={labels}",
        f"--cert-dir={node.dir / 'pki'}",
        "--v=1",
    ]


def containerd_args(node: Node) -> list[str]:
    return ["containerd", f"--config={node.dir / 'containerd.toml'}", "--log-level=warn"]


def wait_for_socket(node: Node, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.socket.exists():
            return True
        time.sleep(0.1)
    return False


MOUNT_POINTS_RECORD = Path("/run/edge-rollout-cluster-mount-points")
"""The shared paths clusters created on the host (one record for every cluster running here)."""


def create_mount_points() -> None:
    """Create the shared paths absent on the host as empty directories and record them."""
    created = _recorded() | {p for p in SHARED_PATHS if not os.path.lexists(p)}
    MOUNT_POINTS_RECORD.write_text(json.dumps(sorted(created)))
    for path in created:
        Path(path).mkdir(parents=True, exist_ok=True)


def remove_mount_points() -> None:
    """Remove the recorded mount points (call only when no cluster runs: removing a directory
    detaches the mounts other namespaces hold on it)."""
    for path in _recorded():
        with contextlib.suppress(OSError):
            Path(path).rmdir()
    MOUNT_POINTS_RECORD.unlink(missing_ok=True)


def _recorded() -> set[str]:
    if not MOUNT_POINTS_RECORD.exists():
        return set()
    return set(json.loads(MOUNT_POINTS_RECORD.read_text()))
