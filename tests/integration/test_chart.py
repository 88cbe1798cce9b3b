"""The Helm chart and the plain manifests against the real kube-apiserver.

`helm lint --strict`; the values schema; `helm template | kubectl apply --dry-run=server`; the
manifests in manifests/ equal a fresh `helm template`; a real `helm install`, whose RBAC is then
proven by running the operator and the agent with nothing but their service-account tokens, and
whose admission policy lets the agent of node n1 write EdgeNode n1 and refuses it EdgeNode n2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_rollout.api import chartvalues
from edge_rollout.cli import generate
from edge_rollout.testing.controlplane import ControlPlane, binaries_dir, free_port
from tests.integration.test_crds import with_change
from tests.support import REPO, Kubectl

CHART = REPO / "charts" / "edge-rollout"
LABELS = ("name", "instance", "version", "component", "part-of", "managed-by")
POLICY_DENIAL = "may only write EdgeNode"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, env=env)


@pytest.fixture(scope="module")
def helm_bin() -> Path:
    return binaries_dir() / "helm"


def template(helm_bin: Path, *args: str) -> list[dict[str, Any]]:
    """`helm template` of the chart (release t, namespace edge-rollout) as parsed documents."""
    out = run(str(helm_bin), "template", "t", str(CHART), "-n", "edge-rollout", *args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def one(documents: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{len(found)} {kind} objects named *{suffix}"
    return found[0]


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} not met within {timeout}s")


# --- the chart on its own --------------------------------------------------------------------


def test_values_yaml_holds_exactly_the_defaults_of_the_chartvalues_model() -> None:
    written = yaml.safe_load((CHART / "values.yaml").read_text())
    assert written == chartvalues.default_values(), (
        "charts/edge-rollout/values.yaml and api/chartvalues.py disagree: change both"
    )


def test_helm_lint_strict_passes(helm_bin: Path) -> None:
    out = run(str(helm_bin), "lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        pytest.param("operator.replicas=2", "additional properties 'replicas'", id="unknown-key"),
        pytest.param("agent.token.expirationSeconds=60", "minimum", id="token-too-short"),
        pytest.param("agent.logLevel=LOUD", "DEBUG", id="bad-enum"),
        pytest.param("operator.logFormat=yaml", "'text', 'json'", id="bad-log-format"),
        pytest.param("agent.updateStrategy.type=Recreate", "OnDelete", id="bad-update-strategy"),
        pytest.param("operator.image.digest=latest", "sha256", id="digest-not-a-digest"),
        pytest.param("store.publicKey=k,store.existingSecret=s", "not both", id="two-key-sources"),
    ],
)
def test_bad_values_are_refused_with_a_message(helm_bin: Path, setting: str, message: str) -> None:
    out = run(str(helm_bin), "template", "t", str(CHART), "--set", setting)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


def test_every_object_carries_the_standard_labels(helm_bin: Path) -> None:
    for document in template(helm_bin):
        if document["kind"] == "CustomResourceDefinition":
            continue
        labels = document["metadata"]["labels"]
        missing = [k for k in LABELS if f"app.kubernetes.io/{k}" not in labels]
        assert not missing, f"{document['kind']} {document['metadata']['name']} lacks {missing}"
        assert labels["helm.sh/chart"] == "edge-rollout-0.1.0"


def test_operator_is_one_recreated_replica_with_peering_probes_and_a_locked_down_container(
    helm_bin: Path,
) -> None:
    deployment = one(template(helm_bin, "--set", "operator.peering.priority=7"), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == [
        "operator",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics-port=8081",
        "--log-level=INFO",
        "--log-format=text",
        "--priority=7",
    ]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["port"] == "health"
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    standalone = one(template(helm_bin, "--set", "operator.peering.enabled=false"), "Deployment")
    assert "--standalone" in standalone["spec"]["template"]["spec"]["containers"][0]["args"]


def test_agent_gets_its_node_from_the_downward_api_and_a_short_lived_pod_bound_token(
    helm_bin: Path,
) -> None:
    daemonset = one(template(helm_bin, "--set", "agent.token.expirationSeconds=900"), "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    agent = pod["containers"][0]
    assert "--node=$(NODE_NAME)" in agent["args"]
    env = {e["name"]: e for e in agent["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    token = volumes["kube-api-access"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["expirationSeconds"] == 900
    assert volumes["data"]["hostPath"] == {
        "path": "/var/lib/edge-rollout",
        "type": "DirectoryOrCreate",
    }
    assert pod["nodeSelector"] == {"edge": "true"}
    assert agent["ports"][0]["containerPort"] == 9464


@pytest.mark.parametrize(
    ("values", "volume"),
    [
        pytest.param(
            ["store.publicKey=KEY"],
            {"configMap": {"name": "t-edge-rollout-store-key"}},
            id="public-key-in-a-configmap",
        ),
        pytest.param(
            ["store.existingSecret=signing"],
            {
                "secret": {
                    "secretName": "signing",
                    "items": [{"key": "public-key.pem", "path": "public-key.pem"}],
                }
            },
            id="existing-secret",
        ),
    ],
)
def test_the_store_key_is_mounted_into_the_operator(
    helm_bin: Path, values: list[str], volume: dict[str, Any]
) -> None:
    documents = template(helm_bin, *[arg for v in values for arg in ("--set", v)])
    pod = one(documents, "Deployment")["spec"]["template"]["spec"]
    mounted = {v["name"]: v for v in pod["volumes"]}["store-key"]
    assert {k: v for k, v in mounted.items() if k != "name"} == volume
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["EDGE_ROLLOUT_STORE_PUBLIC_KEY_FILE"] == "/etc/edge-rollout/store/public-key.pem"
    configmaps = [d for d in documents if d["kind"] == "ConfigMap"]
    assert [c["data"] for c in configmaps] == (
        [{"public-key.pem": "KEY"}] if "configMap" in volume else []
    )


def test_the_servicemonitor_needs_the_value_and_the_api(helm_bin: Path) -> None:
    enabled = ("--set", "metrics.serviceMonitor.enabled=true")
    assert not [d for d in template(helm_bin, *enabled) if d["kind"] == "ServiceMonitor"]
    api = ("--api-versions", "monitoring.coreos.com/v1")
    assert not [d for d in template(helm_bin, *api) if d["kind"] == "ServiceMonitor"]
    monitor = one(template(helm_bin, *enabled, *api), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_an_image_digest_wins_over_the_tag(helm_bin: Path) -> None:
    digest = "sha256:" + "ab" * 32
    documents = template(helm_bin, "--set", f"agent.image.digest={digest}")
    agent = one(documents, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert agent["image"] == f"ghcr.io/edge-rollout/agent@{digest}"
    operator = one(documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert operator["image"] == "ghcr.io/edge-rollout/operator:0.1.0"


# --- cert-manager's knobs, and the chart as a subchart ------------------------------------------


def workload_pods(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """operator / agent -> the pod spec of the Deployment / DaemonSet."""
    return {
        "operator": one(documents, "Deployment")["spec"]["template"]["spec"],
        "agent": one(documents, "DaemonSet")["spec"]["template"]["spec"],
    }


@pytest.mark.parametrize(
    ("args", "selector"),
    [
        pytest.param([], {"edge": "true"}, id="default"),
        pytest.param(["--set", "agent.nodeSelector.foo=bar"], {"foo": "bar"}, id="set"),
        pytest.param(["-f", "values-file"], {"hardware": "jetson"}, id="values-file"),
    ],
)
def test_agent_node_selector_replaces_the_default_instead_of_merging(
    helm_bin: Path, tmp_path: Path, args: list[str], selector: dict[str, str]
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("agent:\n  nodeSelector:\n    hardware: jetson\n")
    args = [str(values) if a == "values-file" else a for a in args]
    pods = workload_pods(template(helm_bin, *args))
    assert pods["agent"]["nodeSelector"] == selector
    assert "nodeSelector" not in pods["operator"]


@pytest.mark.parametrize("component", ["operator", "agent"])
def test_security_contexts_are_values_merged_key_by_key(helm_bin: Path, component: str) -> None:
    defaults = chartvalues.default_values()[component]
    assert isinstance(defaults, dict)
    pod = workload_pods(template(helm_bin))[component]
    assert pod["securityContext"] == defaults["podSecurityContext"]
    assert pod["containers"][0]["securityContext"] == defaults["securityContext"]
    user = f"{component}.securityContext.runAsUser=1000"
    no_group = f"{component}.podSecurityContext.fsGroup=null"
    changed = workload_pods(template(helm_bin, "--set", user, "--set", no_group))
    container = changed[component]["containers"][0]["securityContext"]
    assert container["runAsUser"] == 1000
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["readOnlyRootFilesystem"] is True
    assert "fsGroup" not in changed[component]["securityContext"]
    assert changed[component]["securityContext"]["runAsNonRoot"] is True


def test_common_labels_reach_every_object_and_pod_but_no_selector(helm_bin: Path) -> None:
    documents = template(helm_bin, "--set", "commonLabels.team=vision")
    for document in documents:
        if document["kind"] != "CustomResourceDefinition":
            assert document["metadata"]["labels"]["team"] == "vision", document["metadata"]
    for kind in ("Deployment", "DaemonSet"):
        workload = one(documents, kind)["spec"]
        assert workload["template"]["metadata"]["labels"]["team"] == "vision"
        assert "team" not in workload["selector"]["matchLabels"]


@pytest.mark.parametrize("component", ["operator", "agent"])
def test_scheduling_and_env_knobs_reach_the_pod(
    helm_bin: Path, tmp_path: Path, component: str
) -> None:
    knobs = {
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml",
                         "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        "priorityClassName": "system-node-critical",
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
    }  # fmt: skip
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({component: knobs}))
    pod = workload_pods(template(helm_bin, "-f", str(values)))[component]
    assert pod["tolerations"] == knobs["tolerations"]
    assert pod["affinity"] == knobs["affinity"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["containers"][0]["env"][-1] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}


@pytest.mark.parametrize(
    ("settings", "strategy"),
    [
        pytest.param(
            [], {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}, id="default"
        ),
        pytest.param(
            ["agent.updateStrategy.rollingUpdate.maxUnavailable=1"],
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            id="count",
        ),
        pytest.param(["agent.updateStrategy.type=OnDelete"], {"type": "OnDelete"}, id="on-delete"),
    ],
)
def test_agent_update_strategy(helm_bin: Path, settings: list[str], strategy: Any) -> None:
    documents = template(helm_bin, *[a for s in settings for a in ("--set", s)])
    assert one(documents, "DaemonSet")["spec"]["updateStrategy"] == strategy


def test_log_values_become_flags(helm_bin: Path) -> None:
    pods = workload_pods(template(helm_bin, "--set", "operator.logLevel=DEBUG",
                                  "--set", "operator.logFormat=json",
                                  "--set", "agent.logFormat=json"))  # fmt: skip
    operator_args = pods["operator"]["containers"][0]["args"]
    assert {"--log-level=DEBUG", "--log-format=json"} <= set(operator_args)
    assert {"--log-level=INFO", "--log-format=json"} <= set(pods["agent"]["containers"][0]["args"])


@pytest.fixture
def parent_chart(tmp_path: Path) -> Path:
    """A throwaway umbrella chart with edge-rollout as its subchart and `global:` values."""
    parent = tmp_path / "platform"
    (parent / "charts").mkdir(parents=True)
    subprocess.run(["cp", "-r", str(CHART), str(parent / "charts")], check=True)
    chart = {"apiVersion": "v2", "name": "platform", "version": "1.0.0",
             "dependencies": [{"name": "edge-rollout", "version": "0.1.0"}]}  # fmt: skip
    (parent / "Chart.yaml").write_text(yaml.safe_dump(chart))
    values = {
        "global": {"imageRegistry": "registry.example", "labels": {"team": "platform"}},
        "edge-rollout": {"agent": {"nodeSelector": {"hardware": "jetson"}},
                         "commonLabels": {"team": "vision"}},
    }  # fmt: skip
    (parent / "values.yaml").write_text(yaml.safe_dump(values))
    return parent


def test_the_chart_works_as_a_subchart_with_global_values(
    helm_bin: Path, parent_chart: Path
) -> None:
    lint = run(str(helm_bin), "lint", "--strict", str(parent_chart))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    out = run(str(helm_bin), "template", "p", str(parent_chart), "-n", "platform")
    assert out.returncode == 0, out.stderr
    documents = [d for d in yaml.safe_load_all(out.stdout) if d]
    daemonset = one(documents, "DaemonSet", "-agent")
    assert daemonset["metadata"]["name"] == "p-edge-rollout-agent"
    assert daemonset["metadata"]["labels"]["team"] == "vision"
    assert daemonset["spec"]["template"]["spec"]["nodeSelector"] == {"hardware": "jetson"}
    bad = run(str(helm_bin), "template", "p", str(parent_chart),
              "--set", "edge-rollout.operator.replicas=2")  # fmt: skip
    assert "additional properties 'replicas'" in bad.stderr, bad.stderr


# --- against the apiserver -------------------------------------------------------------------


def ensure_namespace(kubectl: Kubectl, name: str, *labels: str) -> None:
    kubectl("create", "namespace", name, check=False)
    if labels:
        kubectl("label", "namespace", name, "--overwrite", *labels)


@pytest.fixture(scope="module")
def all_crds(kubectl: Kubectl, crds_installed: None) -> None:
    """Our CRDs (from crds/) and Kopf's peering CRD (from the chart's crds/), Established."""
    kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/clusterkopfpeerings.kopf.dev"
    )


def test_the_rendered_chart_passes_a_server_side_dry_run(
    helm_bin: Path, kubectl: Kubectl, all_crds: None, tmp_path: Path
) -> None:
    out = run(str(helm_bin), "template", "t", str(CHART), "-n", "edge-rollout", "--include-crds")
    assert out.returncode == 0, out.stderr
    rendered = tmp_path / "out.yaml"
    rendered.write_text(out.stdout)
    ensure_namespace(kubectl, "edge-rollout", "pod-security.kubernetes.io/enforce=privileged")
    applied = kubectl("apply", "--dry-run=server", "-f", str(rendered))
    for kind in (
        "deployment.apps/t-edge-rollout-operator",
        "daemonset.apps/t-edge-rollout-agent",
        "validatingadmissionpolicy.admissionregistration.k8s.io/t-edge-rollout-agent-own",
        "clusterkopfpeering.kopf.dev/edge-rollout",
    ):
        assert kind in applied.stdout, applied.stdout


def pod_from_template(workload: dict[str, Any], name: str) -> dict[str, Any]:
    template_ = workload["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template_["metadata"]["labels"]},
        "spec": template_["spec"],
    }


def test_the_operator_pod_meets_pod_security_restricted_and_the_agent_breaks_it_only_by_hostpath(
    helm_bin: Path, kubectl: Kubectl, namespace: str
) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    documents = template(helm_bin, "--set", "agent.dataDir.initPermissions=false")
    operator = pod_from_template(one(documents, "Deployment"), "operator")
    kubectl("create", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(operator))
    agent = pod_from_template(one(documents, "DaemonSet"), "agent")
    refused = kubectl(
        "create",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(agent),
        check=False,
    )
    assert refused.returncode != 0
    violations = refused.stderr.split("violates PodSecurity")[1]
    assert (
        'restricted volume types (volume "data" uses restricted volume type "hostPath")'
        in violations
    )
    assert violations.count("(") == 1, violations  # no other violation than the hostPath volume


def test_the_manifests_are_a_fresh_helm_template_of_the_chart(helm_bin: Path) -> None:
    for relative, text in generate.render_manifests(REPO, helm_bin).items():
        assert (REPO / relative).read_text() == text, (
            f"{relative} drifted from charts/edge-rollout: run `make generate` and commit it"
        )


def test_the_manifests_pass_a_server_side_dry_run(kubectl: Kubectl, all_crds: None) -> None:
    ensure_namespace(kubectl, "edge-rollout")
    manifests = REPO / "manifests"
    kubectl("apply", "--dry-run=server", "-f", str(manifests / "crds.yaml"))
    applied = kubectl("apply", "--dry-run=server", "-f", str(manifests / "install.yaml"))
    assert "deployment.apps/edge-rollout-operator" in applied.stdout, applied.stdout


# --- a real helm install, and its RBAC and admission policy in use ----------------------------


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    nodes: tuple[str, str]

    @property
    def operator_sa(self) -> str:
        return f"{self.name}-edge-rollout-operator"

    @property
    def agent_sa(self) -> str:
        return f"{self.name}-edge-rollout-agent"

    def user(self, service_account: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{service_account}"


def helm(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    out = run(str(plane.bin_dir / "helm"), f"--kubeconfig={plane.kubeconfig}", *args)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def release(control_plane: ControlPlane, kubectl: Kubectl, all_crds: None) -> Iterator[Release]:
    """`helm install` (CRDs are already there: crds.enabled=false), nodes n1 and n2, an agent pod
    on n1, the admission policy in force; all removed at the end (the namespace stays)."""
    suffix = uuid.uuid4().hex[:6]
    rel = Release(f"er-{suffix}", f"chart-{suffix}", (f"n1-{suffix}", f"n2-{suffix}"))
    helm(control_plane, *f"install {rel.name} {CHART} -n {rel.namespace}".split(),
         "--create-namespace", "--set", "crds.enabled=false")  # fmt: skip
    try:
        for node in rel.nodes:
            kubectl("create", "-f", "-", input=json.dumps(node_object(node)))
        kubectl("create", "-n", rel.namespace, "-f", "-", input=json.dumps(agent_pod(rel)))
        wait_for(lambda: policy_refuses(control_plane, kubectl, rel), timeout=20,
                 what="the admission policy in force (it takes about a second)")  # fmt: skip
        yield rel
    finally:
        kubectl("delete", "edgenode", *rel.nodes, "--ignore-not-found", check=False)
        kubectl(*f"delete pod agent-n1 -n {rel.namespace} --ignore-not-found --force".split(),
                check=False)  # fmt: skip
        kubectl("delete", "node", *rel.nodes, "--ignore-not-found", check=False)
        helm(control_plane, "uninstall", rel.name, "-n", rel.namespace)


def test_helm_install_as_a_subchart_with_global_values(
    control_plane: ControlPlane, kubectl: Kubectl, all_crds: None, parent_chart: Path
) -> None:
    """The umbrella chart installs; its values reach the subchart; uninstall removes it all."""
    name, namespace = f"p-{uuid.uuid4().hex[:6]}", f"platform-{uuid.uuid4().hex[:6]}"
    # The CRDs are already installed, and the ClusterKopfPeering is one per cluster.
    shared = ("--set", "edge-rollout.crds.enabled=false",
              "--set", "edge-rollout.operator.peering.enabled=false")  # fmt: skip
    installed = helm(control_plane, "install", name, str(parent_chart), "-n", namespace,
                     "--create-namespace", "--render-subchart-notes", *shared)  # fmt: skip
    try:
        assert "The agents run on nodes labelled hardware=jetson (agent.nodeSelector)" in (
            installed.stdout
        )
        out = kubectl("get", "daemonset", "-n", namespace, "-o", "json").stdout
        (daemonset,) = json.loads(out)["items"]
        assert daemonset["metadata"]["labels"]["team"] == "vision"
        assert daemonset["spec"]["template"]["spec"]["nodeSelector"] == {"hardware": "jetson"}
    finally:
        helm(control_plane, "uninstall", name, "-n", namespace)
    left = kubectl("get", "deployment,daemonset,serviceaccount", "-n", namespace,
                   "-l", f"app.kubernetes.io/instance={name}", "-o", "name").stdout  # fmt: skip
    assert left == ""
    kubectl("delete", "namespace", namespace, "--wait=false")


def node_object(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def agent_pod(rel: Release) -> dict[str, Any]:
    """What the DaemonSet would create on n1 (no kubelet runs it; its token is what counts)."""
    container = {"name": "agent", "image": "ghcr.io/edge-rollout/agent"}
    spec = {"nodeName": rel.nodes[0], "serviceAccountName": rel.agent_sa, "containers": [container]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "agent-n1"}, "spec": spec}


def edgenode(name: str, models: list[dict[str, Any]] | None = None) -> str:
    metadata = {"name": name}
    return json.dumps({"apiVersion": "edgerollout.dev/v1alpha1", "kind": "EdgeNode",
                       "metadata": metadata, "spec": {"models": models or []}})  # fmt: skip


def agent_token(kubectl: Kubectl, rel: Release, bound: bool = True) -> str:
    binding = ["--bound-object-kind", "Pod", "--bound-object-name", "agent-n1"] if bound else []
    return kubectl("create", "token", rel.agent_sa, "-n", rel.namespace, *binding).stdout.strip()


def token_kubeconfig(plane: ControlPlane, token: str, path: Path) -> Path:
    ca = plane.workdir / "serving" / "apiserver.crt"
    cluster = {"server": plane.url, "certificate-authority": str(ca)}
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "sa",
              "clusters": [{"name": "c", "cluster": cluster}],
              "users": [{"name": "sa", "user": {"token": token}}],
              "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}  # fmt: skip
    path.write_text(json.dumps(config))
    return path


def as_token(plane: ControlPlane, token: str, *args: str, input: str | None = None) -> Any:
    """kubectl with nothing but `token` (no kubeconfig)."""
    ca = plane.workdir / "serving" / "apiserver.crt"
    command = [str(plane.kubectl), "--kubeconfig=/dev/null", f"--server={plane.url}",
               f"--token={token}", f"--certificate-authority={ca}", *args]  # fmt: skip
    return subprocess.run(command, input=input, capture_output=True, text=True, timeout=60)


def policy_refuses(plane: ControlPlane, kubectl: Kubectl, rel: Release) -> bool:
    token = agent_token(kubectl, rel)
    out = as_token(
        plane, token, "create", "--dry-run=server", "-f", "-", input=edgenode(rel.nodes[1])
    )
    return POLICY_DENIAL in out.stderr


def test_helm_install_creates_every_object(kubectl: Kubectl, release: Release) -> None:
    selector = f"app.kubernetes.io/instance={release.name}"
    kinds = "deployment,daemonset,serviceaccount,service"
    names = kubectl("get", kinds, "-n", release.namespace, "-l", selector, "-o", "name").stdout
    prefix = f"{release.name}-edge-rollout"
    assert sorted(names.split()) == sorted([
        f"deployment.apps/{prefix}-operator", f"daemonset.apps/{prefix}-agent",
        f"serviceaccount/{prefix}-operator", f"serviceaccount/{prefix}-agent",
        f"service/{prefix}-agent-metrics", f"service/{prefix}-operator-metrics",
    ])  # fmt: skip
    kinds = ("clusterrole,clusterrolebinding,clusterkopfpeering,validatingadmissionpolicy,"
             "validatingadmissionpolicybinding")  # fmt: skip
    cluster = kubectl("get", kinds, "-l", selector, "-o", "name").stdout.split()
    for role in ("operator", "agent", "view", "edit"):
        assert f"clusterrole.rbac.authorization.k8s.io/{prefix}-{role}" in cluster
    for binding in ("operator", "agent"):
        assert f"clusterrolebinding.rbac.authorization.k8s.io/{prefix}-{binding}" in cluster
    assert "clusterkopfpeering.kopf.dev/edge-rollout" in cluster
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        assert f"{kind}.admissionregistration.k8s.io/{prefix}-agent-own-edgenode" in cluster


def can(kubectl: Kubectl, user: str, verb: str, resource: str, namespace: str = "default") -> bool:
    """`kubectl auth can-i`; `resource` may end in `/status` (subresource) or `/<name>`."""
    args = [verb, resource]
    if resource.endswith("/status"):
        args = [verb, resource.removesuffix("/status"), "--subresource=status"]
    out = kubectl("auth", "can-i", *args, f"--as={user}", "-n", namespace, check=False)
    return out.stdout.strip() == "yes"


@pytest.mark.parametrize(
    ("account", "verb", "resource", "allowed"),
    [
        ("operator", "watch", "modeldeployments.edgerollout.dev", True),
        ("operator", "patch", "modeldeployments.edgerollout.dev", True),
        ("operator", "patch", "modeldeployments.edgerollout.dev/status", True),
        ("operator", "update", "modeldeployments.edgerollout.dev", False),
        ("operator", "delete", "modeldeployments.edgerollout.dev", False),
        ("operator", "create", "edgenodes.edgerollout.dev", True),
        ("operator", "delete", "edgenodes.edgerollout.dev", True),
        ("operator", "list", "nodes", True),
        ("operator", "patch", "nodes", False),
        ("operator", "create", "events", True),
        ("operator", "create", "events.events.k8s.io", True),
        ("operator", "get", "secrets", False),
        ("operator", "patch", "clusterkopfpeerings.kopf.dev/edge-rollout", True),
        ("operator", "patch", "clusterkopfpeerings.kopf.dev/someone-else", False),
        ("agent", "watch", "edgenodes.edgerollout.dev", True),
        ("agent", "create", "edgenodes.edgerollout.dev", True),
        ("agent", "patch", "edgenodes.edgerollout.dev/status", True),
        ("agent", "patch", "edgenodes.edgerollout.dev", False),
        ("agent", "delete", "edgenodes.edgerollout.dev", False),
        ("agent", "list", "modeldeployments.edgerollout.dev", False),
        ("agent", "get", "secrets", False),
        ("agent", "list", "pods", False),
    ],
)
def test_service_accounts_have_exactly_the_rights_they_need(
    kubectl: Kubectl, release: Release, account: str, verb: str, resource: str, allowed: bool
) -> None:
    sa = release.operator_sa if account == "operator" else release.agent_sa
    assert can(kubectl, release.user(sa), verb, resource) is allowed


def test_user_roles_let_viewers_read_and_editors_write_modeldeployments(
    kubectl: Kubectl, release: Release, namespace: str
) -> None:
    # Bound directly: folding them into view/edit/admin needs the aggregation controller (KCM).
    for role, user in (("view", "viewer"), ("edit", "editor")):
        kubectl("create", "rolebinding", role, "-n", namespace,
                f"--clusterrole={release.name}-edge-rollout-{role}", f"--user={user}")  # fmt: skip
    md = "modeldeployments.edgerollout.dev"
    assert can(kubectl, "viewer", "list", md, namespace)
    assert not can(kubectl, "viewer", "create", md, namespace)
    assert can(kubectl, "editor", "create", md, namespace)
    assert can(kubectl, "editor", "patch", md, namespace)
    assert not can(kubectl, "editor", "patch", f"{md}/status", namespace)
    view = kubectl("get", "clusterrole", f"{release.name}-edge-rollout-view", "-o", "json").stdout
    assert json.loads(view)["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"]


def test_agent_of_node_n1_may_write_edgenode_n1_and_is_refused_n2(
    control_plane: ControlPlane, kubectl: Kubectl, release: Release
) -> None:
    token, (n1, n2) = agent_token(kubectl, release), release.nodes
    whoami = json.loads(as_token(control_plane, token, "auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["extra"]["authentication.kubernetes.io/node-name"] == [n1]

    created = as_token(control_plane, token, "create", "-f", "-", input=edgenode(n1))
    assert created.returncode == 0, created.stderr
    status = '{"status": {"heartbeatTime": "2026-01-01T00:00:00Z"}}'
    patch = ["--subresource=status", "--type=merge", "-p"]
    patched = as_token(control_plane, token, "patch", "edgenode", n1, *patch, status)
    assert patched.returncode == 0, patched.stderr

    refused = as_token(control_plane, token, "create", "-f", "-", input=edgenode(n2))
    assert refused.returncode != 0
    assert (f"the edge-rollout agent on node {n1} may only write EdgeNode {n1}, not {n2}"
            in refused.stderr), refused.stderr  # fmt: skip
    kubectl("create", "-f", "-", input=edgenode(n2))
    refused = as_token(control_plane, token, "patch", "edgenode", n2, *patch, status)
    assert refused.returncode != 0
    assert f"may only write EdgeNode {n1}, not {n2}" in refused.stderr, refused.stderr


def test_agent_may_not_assign_itself_models_nor_write_with_an_unbound_token(
    control_plane: ControlPlane, kubectl: Kubectl, release: Release
) -> None:
    n1 = release.nodes[0]
    model = {"name": "ns/md", "model": "m", "version": "1", "variant": "fp32",
             "storeUrl": "http://store.invalid"}  # fmt: skip
    dry_run = ("create", "--dry-run=server", "-f", "-")
    out = as_token(control_plane, agent_token(kubectl, release), *dry_run,
                   input=edgenode(n1, [model]))  # fmt: skip
    assert "only with empty spec.models: the operator assigns models" in out.stderr, out.stderr
    unbound = agent_token(kubectl, release, bound=False)
    out = as_token(control_plane, unbound, *dry_run, input=edgenode(n1))
    assert "must use a service-account token bound to a pod on a node" in out.stderr, out.stderr


class Process:
    """A child process logging to a file; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
            )

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


OPERATOR = (
    "import logging, sys; logging.basicConfig(level=logging.INFO);"
    " from edge_rollout.cli.main import main; main(sys.argv[1:])"
)
"""`edge-rollout` with logging on (so that a 403 would show in the output)."""


def test_the_operator_reconciles_with_only_its_service_accounts_rights(
    control_plane: ControlPlane, kubectl: Kubectl, release: Release, namespace: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    token = kubectl("create", "token", release.operator_sa, "-n", release.namespace).stdout.strip()
    kubeconfig = token_kubeconfig(control_plane, token, tmp_path / "kubeconfig")
    env = {**os.environ, "POD_ID": f"test-{release.name}", "KUBECONFIG": str(kubeconfig)}
    port = free_port()
    args = [sys.executable, "-c", OPERATOR, "operator",
            f"--liveness=http://127.0.0.1:{port}/healthz", "--priority=100"]  # fmt: skip
    get = ("get", "mdep", "magika", "-n", namespace, "-o")
    with Process(args, tmp_path / "operator.log", env) as operator:
        document = with_change("metadata.namespace", namespace)
        kubectl("apply", "-f", "-", input=json.dumps(document))
        wait_for(lambda: kubectl(*get, "jsonpath={.status.observedGeneration}").stdout == "1",
                 timeout=60, what=f"status.observedGeneration\n{operator.output()}")  # fmt: skip
        peering = ("get", "clusterkopfpeering", "edge-rollout", "-o", "jsonpath={.status}")
        wait_for(lambda: f"test-{release.name}" in kubectl(*peering).stdout, timeout=30,
                 what="the operator in the ClusterKopfPeering")  # fmt: skip
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
        annotations = json.loads(kubectl(*get, "json").stdout)["metadata"]["annotations"]
        assert "edgerollout.dev/last-handled-configuration" in annotations
        # Deleting runs the operator's delete handler and lifts its finalizer.
        kubectl("delete", "mdep", "magika", "-n", namespace, "--timeout=60s")
    assert "Forbidden" not in operator.output(), operator.output()


def test_the_agent_reports_its_own_node_and_is_refused_another_with_a_pod_bound_token(
    control_plane: ControlPlane, kubectl: Kubectl, release: Release, tmp_path: Path
) -> None:
    n1, n2 = release.nodes
    kubeconfig = token_kubeconfig(control_plane, agent_token(kubectl, release), tmp_path / "kc")

    def agent(node: str) -> list[str]:
        return [sys.executable, "-m", "edge_rollout_agent", "--node", node,
                "--kubeconfig", str(kubeconfig), "--data-dir", str(tmp_path / node),
                "--metrics-port", "0", "--heartbeat", "1"]  # fmt: skip

    kubectl("delete", "edgenode", n1, n2, "--ignore-not-found")
    arch = ("get", "edgenode", n1, "-o", "jsonpath={.status.hardware.arch}")
    with Process(agent(n1), tmp_path / "n1.log", dict(os.environ)) as own:
        wait_for(lambda: kubectl(*arch, check=False).stdout, timeout=60,
                 what=f"EdgeNode {n1} status\n{own.output()}")  # fmt: skip
    with Process(agent(n2), tmp_path / "n2.log", dict(os.environ)) as other:
        wait_for(lambda: POLICY_DENIAL in other.output(), timeout=60, what="the refusal")
    assert f"may only write EdgeNode {n1}, not {n2}" in other.output()
    assert kubectl("get", "edgenode", n2, check=False).returncode != 0
