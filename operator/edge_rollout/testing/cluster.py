"""A real multi-node Kubernetes cluster on this machine: control plane, CoreDNS, kube-proxy and
N nodes of containerd + runc + kubelet, in one network namespace (nothing listens on the host).

Used by `make cluster-up NODES=3` and the `cluster` test tier. Every process lives in the cluster's
cgroup tree, so `down` (from any process) kills what the tree holds and removes the tree, the mount
namespaces and the network namespace; host sysctls, ip_forward and iptables are never changed.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edge_rollout.testing import cluster_cgroups as cgroups
from edge_rollout.testing import cluster_control as control
from edge_rollout.testing import cluster_images as images
from edge_rollout.testing import cluster_network as network
from edge_rollout.testing import cluster_node
from edge_rollout.testing.controlplane import (
    binaries_dir,
    stop_pids,
    write_certificates,
    write_kubeconfig,
)

ADMIN_TOKEN = "edge-rollout-admin"  # the static admin token controlplane.write_certificates writes


class ClusterError(RuntimeError):
    """The cluster could not start; the message names the daemon and ends with its log."""


@dataclass
class Cluster:
    """N nodes and a control plane under `workdir`; a context manager, or start()/stop()."""

    workdir: Path
    nodes: int = 3
    bin_dir: Path = field(default_factory=binaries_dir)
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()

    @property
    def netns(self) -> str:
        return network.netns_name(self.workdir)

    @property
    def cgroup_root(self) -> str:
        return self.netns

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def node_list(self) -> list[cluster_node.Node]:
        return [cluster_node.Node(i, self.workdir, self.cgroup_root) for i in range(self.nodes)]

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 240.0) -> None:
        """Everything up, every node Ready and cluster DNS answering, within `timeout` seconds."""
        if (self.workdir / "state.json").exists():
            raise ClusterError(f"a cluster runs in {self.workdir}: run `cluster down` first")
        deadline = time.monotonic() + timeout
        try:
            self._start_base()
            self._start_control_plane(deadline)
            self._start_addons()
            self._start_nodes(deadline)
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill every process of the cluster, remove its cgroups, namespaces and node data."""
        teardown(self.workdir)
        for proc in self.daemons.values():
            proc.poll()
        self.daemons.clear()

    # --- running things inside the cluster ---------------------------------------------------

    def exec_in_netns(
        self, argv: list[str], input: str | None = None, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`argv` run in the cluster's network namespace; `check` raises with its stderr."""
        result = subprocess.run(
            network.in_netns(self.netns, argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """The real kubectl as cluster admin, run in the cluster's network namespace."""
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        return self.exec_in_netns(argv, input=input, timeout=timeout, check=check)

    def helm(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / "helm"), f"--kubeconfig={self.kubeconfig}", *args]
        return self.exec_in_netns(argv, timeout=timeout)

    def import_images(self, archives: Iterable[Path]) -> None:
        """Import OCI archives into every node's containerd (nodes in parallel)."""
        paths = list(archives)
        with ThreadPoolExecutor(max_workers=self.nodes) as pool:
            jobs = [
                pool.submit(images.import_archive, node.ctr(), path)
                for node in self.node_list
                for path in paths
            ]
            for job in jobs:
                job.result()

    def command_hint(self) -> str:
        """How a person reaches the cluster from a shell."""
        kubectl = self.bin_dir / "kubectl"
        return (
            f"nsenter --net=/run/netns/{self.netns} {kubectl} "
            f"--kubeconfig={self.kubeconfig} get nodes -o wide"
        )

    # --- start-up steps ------------------------------------------------------------------------

    def _start_base(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        _write_state(self.workdir, self.netns, self.cgroup_root)
        cluster_node.create_mount_points()
        cgroups.make_cgroup(f"{self.cgroup_root}/control-plane")
        for node in self.node_list:
            cgroups.make_cgroup(node.pods_cgroup)
            cgroups.make_cgroup(node.daemons_cgroup)
        network.create_netns(self.netns, self.nodes)

    def _start_control_plane(self, deadline: float) -> None:
        write_certificates(self.workdir)
        tokens = {
            user: control.add_token(self.workdir, user, groups)
            for user, groups in (
                ("system:kube-controller-manager", ""),
                ("system:kube-scheduler", ""),
                ("system:kube-proxy", ""),
                (control.COREDNS_USER, ""),
                *((f"system:node:{n.name}", "system:nodes") for n in self.node_list),
            )
        }
        self._spawn("etcd", control.cluster_etcd_args(self.bin_dir, self.workdir))
        self._spawn("kube-apiserver", control.cluster_apiserver_args(self.bin_dir, self.workdir))
        self._wait("kube-apiserver", self._apiserver_ready, deadline)
        write_kubeconfig(self.workdir, control.SERVER)
        (self.workdir / "kubeconfigs").mkdir(exist_ok=True)
        for user, token in tokens.items():
            path = self._kubeconfig_path(user)
            control.write_token_kubeconfig(path, self.workdir, user, token)

    def _kubeconfig_path(self, user: str) -> Path:
        return self.workdir / "kubeconfigs" / (user.replace(":", "-") + ".json")

    def _start_addons(self) -> None:
        kubeconfig = self._kubeconfig_path
        manager = kubeconfig("system:kube-controller-manager")
        args = control.controller_manager_args(self.bin_dir, self.workdir, manager)
        self._spawn("kube-controller-manager", args)
        scheduler = kubeconfig("system:kube-scheduler")
        self._spawn("kube-scheduler", control.scheduler_args(self.bin_dir, scheduler))
        proxy = control.kube_proxy_config(kubeconfig("system:kube-proxy"), self.node_list[0].name)
        (self.workdir / "kube-proxy.json").write_text(json.dumps(proxy))
        self._spawn(
            "kube-proxy", control.kube_proxy_args(self.bin_dir, self.workdir / "kube-proxy.json")
        )
        self._start_dns()

    def _start_dns(self) -> None:
        rbac = {"kind": "List", "apiVersion": "v1", "items": control.COREDNS_RBAC}
        self.kubectl("apply", "-f", "-", input=json.dumps(rbac))
        corefile = self.workdir / "Corefile"
        corefile.write_text(control.corefile(self._kubeconfig_path(control.COREDNS_USER)))
        self._spawn("coredns", control.coredns_args(self.bin_dir, corefile))

    def _start_nodes(self, deadline: float) -> None:
        for node in self.node_list:
            cluster_node.prepare(node)
            kubelet_json = cluster_node.kubelet_config(node, self.workdir / "ca.crt")
            (node.dir / "kubelet.json").write_text(json.dumps(kubelet_json))
            self._start_mount_namespace(node, deadline)
            self._spawn_in_node(node, "containerd", cluster_node.containerd_args(node))
        pause = images.pause_archive()
        for node in self.node_list:
            self._wait(f"{node.name}-containerd", node.socket.exists, deadline)
        self.import_images([pause])
        for node in self.node_list:
            kubeconfig = self._kubeconfig_path(f"system:node:{node.name}")
            self._spawn_in_node(
                node, "kubelet", cluster_node.kubelet_args(node, self.bin_dir, kubeconfig)
            )

    def _start_mount_namespace(self, node: cluster_node.Node, deadline: float) -> None:
        marker = node.dir / "mounted"
        script = (
            f"{cluster_node.mount_script(node, self.netns)}\ntouch {marker}\nexec sleep infinity"
        )
        argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script]
        self._spawn(f"{node.name}-mounts", argv, cgroup=node.daemons_cgroup, in_netns=False)
        self._wait(f"{node.name}-mounts", marker.exists, deadline)

    def _spawn_in_node(self, node: cluster_node.Node, daemon: str, argv: list[str]) -> None:
        holder = self.daemons[f"{node.name}-mounts"].pid
        enter = ["nsenter", f"--mount=/proc/{holder}/ns/mnt", "--"]
        self._spawn(f"{node.name}-{daemon}", [*enter, *argv], cgroup=node.daemons_cgroup)

    def _spawn(self, name: str, argv: list[str], cgroup: str = "", in_netns: bool = True) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            network.in_netns(self.netns, argv) if in_netns else argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=cgroups.joiner(cgroup or f"{self.cgroup_root}/control-plane"),
        )
        log.close()
        self.daemons[name] = proc
        (self.workdir / "daemons.json").write_text(
            json.dumps({n: p.pid for n, p in self.daemons.items()})
        )

    # --- waiting -------------------------------------------------------------------------------

    def _wait(self, what: str, ready: Callable[[], bool], deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            if ready():
                return
            time.sleep(0.3)
        raise ClusterError(f"{what} not ready in time{self._log_tail(what)}")

    def _check_alive(self) -> None:
        for name, proc in self.daemons.items():
            if proc.poll() is not None:
                raise ClusterError(f"{name} exited with {proc.returncode}{self._log_tail(name)}")

    def _log_tail(self, name: str, lines: int = 25) -> str:
        log = self.logs / f"{name}.log"
        if not log.exists():
            return ""
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        return f"; last lines of {log}:\n" + "\n".join(tail)

    def _apiserver_ready(self) -> bool:
        return network.call_in_netns(self.netns, lambda: _https_ok(control.SERVER + "/readyz"))

    def _wait_ready(self, deadline: float) -> None:
        self._wait("nodes Ready", self._nodes_ready, deadline)
        dns = f"http://{network.DNS_IP}:8181/ready"
        self._wait(
            "coredns", lambda: network.call_in_netns(self.netns, lambda: _http_ok(dns)), deadline
        )
        self._wait("default service account", self._default_account, deadline)

    def _nodes_ready(self) -> bool:
        result = self.kubectl("get", "nodes", "-o", "json", check=False)
        if result.returncode != 0:
            return False
        ready = [n for n in json.loads(result.stdout)["items"] if _node_ready(n)]
        return len(ready) == self.nodes

    def _default_account(self) -> bool:
        result = self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False)
        return result.returncode == 0

    def memory(self) -> dict[str, int]:
        """Resident memory (bytes) of each daemon, plus `pods` for everything the kubelets run."""
        rss = {name: _rss(proc.pid) for name, proc in self.daemons.items()}
        everything = sum(_rss(pid) for pid in cgroups.pids(self.cgroup_root))
        rss["pods"] = max(0, everything - sum(rss.values()))
        return rss


def _node_ready(node: dict[str, object]) -> bool:
    status = node.get("status", {})
    conditions = status.get("conditions", []) if isinstance(status, dict) else []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _https_ok(url: str) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --- state shared between `up` and `down` ------------------------------------------------------


def _write_state(workdir: Path, netns: str, cgroup_root: str) -> None:
    state = {"netns": netns, "cgroupRoot": cgroup_root}
    (workdir / "state.json").write_text(json.dumps(state, indent=2))


def teardown(workdir: Path) -> None:
    """Stop the cluster described by `workdir/state.json` (no-op without one); logs stay."""
    state_file = workdir / "state.json"
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    cgroups.kill_all(state["cgroupRoot"], grace=2.0)  # its data is thrown away anyway
    cgroups.remove_tree(state["cgroupRoot"])
    network.delete_netns(state["netns"])
    if not any(network.NETNS_DIR.glob("edge-rollout-*")):  # the last cluster running here
        cluster_node.remove_mount_points()
    for data in [*workdir.glob("node-*"), workdir / "etcd"]:
        shutil.rmtree(data, ignore_errors=True)
    for socket in cluster_node.SOCKET_DIR.glob(f"{state['cgroupRoot']}-*"):
        socket.unlink(missing_ok=True)
    state_file.unlink()


def main(argv: list[str] | None = None) -> None:
    """`python -m edge_rollout.testing.cluster up|down DIR --nodes N` (make cluster-up NODES=N)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args(argv)
    teardown(args.workdir.resolve())
    stop_pids(args.workdir)  # a process-level control plane started there by `cluster-up`
    if args.action == "down":
        print(f"cluster in {args.workdir} stopped")
        return
    started = time.monotonic()
    cluster = Cluster(args.workdir, nodes=args.nodes)
    cluster.start()
    print(f"{args.nodes} nodes Ready in {time.monotonic() - started:.1f}s")
    print(f"KUBECONFIG={cluster.kubeconfig} (apiserver {control.SERVER}, inside the namespace)")
    print(cluster.command_hint())


if __name__ == "__main__":
    main()
