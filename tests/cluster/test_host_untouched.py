"""The cluster stays off the host: no socket of its processes in the host's network namespace, the
host's sysctls and ip_forward as they were, and `stop()` leaves no process, cgroup, namespace or
node data behind (a second, one-node cluster started and stopped here)."""

from __future__ import annotations

import os
from pathlib import Path

from edge_rollout.testing import cluster_cgroups, cluster_network
from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.cluster_node import KUBELET_SYSCTLS
from tests.cluster.conftest import HOST_SYSCTLS


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def host_listening_inodes() -> set[str]:
    """Inodes of listening TCP sockets in this process's (the host's) network namespace."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def test_nothing_of_the_cluster_listens_on_the_host(cluster: Cluster) -> None:
    processes = cluster_cgroups.pids(cluster.cgroup_root)
    assert len(processes) > 10
    theirs = set().union(*(socket_inodes(pid) for pid in processes))
    assert theirs, "the cluster's processes hold no socket at all?"
    assert not theirs & host_listening_inodes()


def test_the_host_keeps_its_sysctls(cluster: Cluster, host_sysctls: dict[str, str]) -> None:
    assert set(KUBELET_SYSCTLS) <= set(HOST_SYSCTLS)
    now = {key: Path("/proc/sys", key).read_text() for key in HOST_SYSCTLS}
    assert now == host_sysctls


def test_stop_leaves_nothing_behind(cluster: Cluster, tmp_path: Path) -> None:
    other = Cluster(tmp_path / "one-node", nodes=1, bin_dir=cluster.bin_dir)
    with other:
        assert other.kubectl("get", "node", "node-1").returncode == 0
        processes = cluster_cgroups.pids(other.cgroup_root)
    assert processes
    assert not any(Path(f"/proc/{pid}").exists() for pid in processes)
    assert not list(cluster_cgroups.walk(other.cgroup_root))
    assert not (cluster_network.NETNS_DIR / other.netns).exists()
    assert not (other.workdir / "state.json").exists()
    assert not list(other.workdir.glob("node-*"))
    assert not [n.socket for n in other.node_list if n.socket.exists()]
    assert cluster.kubectl("get", "nodes").returncode == 0, "the session's cluster was hit"
