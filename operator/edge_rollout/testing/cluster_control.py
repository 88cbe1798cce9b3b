"""The multi-node cluster's control plane: command lines and credentials, no process handling.

etcd and kube-apiserver reuse the process-level control plane's arguments and certificates
(controlplane.py) with the ServiceAccount admission plugin on, Node authorization and the addresses
of the cluster's network namespace. Components authenticate with static tokens written here.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from edge_rollout.testing import cluster_network as network
from edge_rollout.testing.controlplane import apiserver_args, etcd_args

ETCD_PORT = 2379
SERVER = f"https://{network.APISERVER_IP}:{network.APISERVER_PORT}"
COREDNS_USER = "edge-rollout:coredns"

COREDNS_RBAC = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": COREDNS_USER},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["services", "endpoints", "pods", "namespaces"],
                "verbs": ["list", "watch"],
            },
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": COREDNS_USER},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": COREDNS_USER,
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}
        ],
    },
]
"""What CoreDNS's kubernetes plugin reads (no built-in role matches it)."""


def ca_file(workdir: Path) -> Path:
    """The apiserver's self-generated serving chain: what kubeconfigs and Pods trust."""
    return workdir / "serving" / "apiserver.crt"


def add_token(workdir: Path, user: str, groups: str = "") -> str:
    """A static token for `user` appended to tokens.csv (read by the apiserver at start)."""
    token = secrets.token_hex(16)
    with (workdir / "tokens.csv").open("a") as tokens:
        tokens.write(f'{token},{user},{user},"{groups}"\n')
    return token


def write_token_kubeconfig(path: Path, workdir: Path, user: str, token: str) -> Path:
    """A kubeconfig for one component, trusting the apiserver's serving chain by path."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "edge-rollout",
        "clusters": [
            {
                "name": "edge-rollout",
                "cluster": {"server": SERVER, "certificate-authority": str(ca_file(workdir))},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "edge-rollout", "context": {"cluster": "edge-rollout", "user": user}}
        ],
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


def cluster_etcd_args(bin_dir: Path, workdir: Path) -> list[str]:
    return etcd_args(bin_dir, workdir, ETCD_PORT, ETCD_PORT + 1)


def cluster_apiserver_args(bin_dir: Path, workdir: Path) -> list[str]:
    """The process-level apiserver's flags with admission, authorization and addresses of a
    cluster with kubelets (Pods get node-bound service-account tokens)."""
    overrides = {
        "--bind-address": network.APISERVER_IP,
        "--advertise-address": network.APISERVER_IP,
        "--service-cluster-ip-range": network.SERVICE_CIDR,
        "--authorization-mode": "Node,RBAC",
        "--disable-admission-plugins": None,
    }
    args = _override(apiserver_args(bin_dir, workdir, ETCD_PORT, network.APISERVER_PORT), overrides)
    return [
        *args,
        "--enable-admission-plugins=NodeRestriction",
        # Node names resolve nowhere: logs, exec and port-forward go to the node's address.
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-client-certificate={workdir / 'admin.crt'}",
        f"--kubelet-client-key={workdir / 'admin.key'}",
    ]


def _override(args: list[str], overrides: dict[str, str | None]) -> list[str]:
    result = []
    for arg in args:
        name = arg.split("=", 1)[0]
        if name not in overrides:
            result.append(arg)
        elif (value := overrides[name]) is not None:
            result.append(f"{name}={value}")
    return result


def controller_manager_args(bin_dir: Path, workdir: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--service-account-private-key-file={workdir / 'sa.key'}",
        f"--root-ca-file={ca_file(workdir)}",
        "--use-service-account-credentials",
        f"--flex-volume-plugin-dir={workdir / 'flex-volume'}",
        "--leader-elect=false",
        "--secure-port=0",
        "--v=1",
    ]


def scheduler_args(bin_dir: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--secure-port=0",
        "--v=1",
    ]


def kube_proxy_config(kubeconfig: Path, node_name: str) -> dict[str, object]:
    """One kube-proxy for every node (they share the namespace); it leaves host conntrack alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": network.CLUSTER_CIDR,
        "hostnameOverride": node_name,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "oomScoreAdj": 0,
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # Replies from a Service backend on the same bridge come back through the gateway.
        "iptables": {"masqueradeAll": True},
    }


def kube_proxy_args(bin_dir: Path, config: Path) -> list[str]:
    return [str(bin_dir / "kube-proxy"), f"--config={config}", "--v=1"]


def corefile(kubeconfig: Path) -> str:
    """CoreDNS serving cluster.local only (no upstream: traffic never leaves the namespace)."""
    return f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {network.DNS_IP}
    errors
    ready {network.DNS_IP}:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
}}
"""


def coredns_args(bin_dir: Path, conf: Path) -> list[str]:
    return [str(bin_dir / "coredns"), "-conf", str(conf)]
