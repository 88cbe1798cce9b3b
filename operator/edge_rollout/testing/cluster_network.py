"""The multi-node cluster's network: one network namespace holding every address of the cluster.

Its `lo` carries the apiserver, CoreDNS and one address per node; each node gets a CNI bridge and a
/24 Pod range. Nothing here touches the host's namespace: bridges, routes and iptables rules vanish
with the namespace. Addresses are fixed, the namespace name is derived from the state directory.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

NETNS_DIR = Path("/run/netns")
APISERVER_IP = "10.250.0.1"
DNS_IP = "10.250.0.10"
SERVICE_CIDR = "10.96.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
APISERVER_PORT = 6443
CLONE_NEWNET = 0x40000000

T = TypeVar("T")


class NetworkError(RuntimeError):
    """The cluster's network namespace could not be made or entered."""


def netns_name(workdir: Path) -> str:
    """`edge-rollout-<8 hex>`, stable for one state directory, distinct between directories."""
    digest = hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:8]
    return f"edge-rollout-{digest}"


def node_ip(index: int) -> str:
    """The address of node `index` (0-based) on the namespace's `lo`: 10.250.0.100, .101, ..."""
    return f"10.250.0.{100 + index}"


def pod_subnet(index: int) -> str:
    """Node `index`'s Pod range: 10.244.1.0/24 for node 0, 10.244.2.0/24 for node 1, ..."""
    return f"10.244.{index + 1}.0/24"


def in_netns(netns: str, argv: list[str]) -> list[str]:
    """`argv` run inside the namespace (nsenter execs, so the pid is the command's own)."""
    return ["nsenter", f"--net={NETNS_DIR / netns}", "--", *argv]


def run(argv: list[str], timeout: float = 30.0) -> str:
    """Run a host tool; a failure raises with the command and its stderr."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NetworkError(f"{' '.join(argv)} did not finish in {timeout:.0f}s") from exc
    if result.returncode != 0:
        raise NetworkError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


def create_netns(netns: str, nodes: int) -> None:
    """The namespace with `lo` up holding every cluster address, forwarding on (in it only)."""
    if (NETNS_DIR / netns).exists():
        raise NetworkError(f"network namespace {netns} exists: run `cluster down` first")
    run(["ip", "netns", "add", netns])
    addresses = [APISERVER_IP, DNS_IP, *(node_ip(i) for i in range(nodes))]
    commands = [
        ["ip", "link", "set", "lo", "up"],
        *(["ip", "addr", "add", f"{ip}/32", "dev", "lo"] for ip in addresses),
        # hostNetwork processes reach Services through kube-proxy's OUTPUT rules: they need a route.
        ["ip", "route", "replace", SERVICE_CIDR, "dev", "lo", "src", APISERVER_IP],
        ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ]
    for argv in commands:
        run(in_netns(netns, argv))


def delete_netns(netns: str) -> None:
    """Remove the namespace (its bridges, veths and iptables rules go with it)."""
    if (NETNS_DIR / netns).exists():
        run(["ip", "netns", "delete", netns])


def cni_config(index: int, data_dir: Path) -> dict[str, object]:
    """The CNI conflist of node `index`: a bridge `er-br<index>` on the node's Pod range."""
    subnet = pod_subnet(index)
    gateway = subnet.replace(".0/24", ".1")
    return {
        "cniVersion": "1.0.0",
        "name": "edge-rollout",
        "plugins": [
            {
                "type": "bridge",
                "bridge": f"er-br{index}",
                "isGateway": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(data_dir),
                    "ranges": [[{"subnet": subnet, "gateway": gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def call_in_netns(netns: str, fn: Callable[[], T]) -> T:
    """`fn()` run on a thread that entered the namespace (sockets it opens live there)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            _enter(netns)
            outcome.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def _enter(netns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetworkError(f"setns into {netns} failed: {os.strerror(errno)}")
    finally:
        os.close(fd)
