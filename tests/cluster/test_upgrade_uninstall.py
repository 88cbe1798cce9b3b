"""`helm upgrade` to a new chart version in the middle of a rollout (both pod templates change, so
the operator and every agent are replaced) and the rollout completes; then `helm uninstall` leaves
nothing of the release behind but the CRDs, ModelDeployments and EdgeNodes (docs/operations.md).
Runs last in the tier: it removes the session's release."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from edge_rollout.testing.cluster import Cluster
from edge_rollout.testing.cluster_story import (
    CHART,
    RELEASE_NAMESPACE,
    Rollout,
    Store,
    Watch,
    diagnostics,
    get,
    wait_until,
    watch,
)

NAMESPACE = RELEASE_NAMESPACE
ROLLOUT_NAMESPACE = "upgrade"
RELEASE_KINDS = (
    "all,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings,configmaps,secrets,"
    "validatingadmissionpolicies,validatingadmissionpolicybindings,clusterkopfpeerings"
)


@pytest.fixture(scope="module")
def rollout(cluster: Cluster, installed: str, store: Store) -> Rollout:
    cluster.kubectl("create", "namespace", ROLLOUT_NAMESPACE)
    return Rollout(ROLLOUT_NAMESPACE, "magika", store.slow_url, max_unavailable=1)


def bumped_chart(workdir: Path) -> tuple[Path, str]:
    """A copy of the chart with its patch version raised (same appVersion, so the same images)."""
    chart = workdir / "edge-rollout"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    major, minor, patch = str(meta["version"]).split(".")
    meta["version"] = f"{major}.{minor}.{int(patch) + 1}"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return chart, str(meta["version"])


def test_helm_upgrade_during_a_rollout_completes(
    cluster: Cluster, installed: str, rollout: Rollout, tmp_path: Path
) -> None:
    chart, version = bumped_chart(tmp_path)
    upgraded: list[str] = []

    def upgrade_once_in_flight(seen: Watch) -> None:
        downloading = any(
            got.get("phase") == "Downloading" for _, got in seen.snapshots[-1].values()
        )
        if downloading and not upgraded:
            upgraded.append(seen.lines[-1])
            cluster.helm(
                "upgrade", installed, str(chart), "-n", NAMESPACE, "--reuse-values",
                "--set", "operator.logLevel=DEBUG", "--set", "agent.logLevel=DEBUG",
                "--wait", "--timeout=4m", timeout=300,
            )  # fmt: skip

    rollout.apply(cluster, "1.0.0", [{"setNodePercent": 100}])
    try:
        status, seen = watch(
            cluster, rollout, "1.0.0", ("Ready",), timeout=300, on_tick=upgrade_once_in_flight
        )
    except TimeoutError as error:
        pytest.fail(f"{error}\n{diagnostics(cluster, ROLLOUT_NAMESPACE)}")
    assert upgraded, f"the rollout finished before a node was seen downloading: {seen.lines}"
    assert upgraded[0] != seen.lines[-1]
    history = cluster.helm("history", installed, "-n", NAMESPACE, "-o", "yaml").stdout
    assert [h["chart"] for h in yaml.safe_load(history)][-1] == f"edge-rollout-{version}"
    operator = get(cluster, "deploy", "-n", NAMESPACE, f"{installed}-edge-rollout-operator")
    assert "--log-level=DEBUG" in operator["spec"]["template"]["spec"]["containers"][0]["args"]
    entries = rollout.entries(cluster)
    assert {got.get("activeVersion") for _, got in entries.values()} == {"1.0.0"}
    assert status["phase"] == "Ready"


def labelled(cluster: Cluster, kinds: str, release: str) -> list[str]:
    out = cluster.kubectl(
        "get", kinds, "-A", "-l", f"app.kubernetes.io/instance={release}", "-o", "name"
    ).stdout  # fmt: skip
    return sorted(line for line in out.splitlines() if line)


def test_helm_uninstall_leaves_only_the_crds_and_their_objects(
    cluster: Cluster, installed: str
) -> None:
    assert labelled(cluster, RELEASE_KINDS, installed), "nothing to uninstall: wrong label?"
    cluster.helm("uninstall", installed, "-n", NAMESPACE, "--wait", "--timeout=3m", timeout=240)

    def pods_left() -> str:
        return cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "name").stdout

    wait_until(f"the Pods in {NAMESPACE} to go", lambda: not pods_left(), 90)
    assert labelled(cluster, RELEASE_KINDS, installed) == []
    crds = get(cluster, "customresourcedefinitions")["items"]
    kept = [
        crd["metadata"]["name"]
        for crd in crds
        if crd["metadata"].get("annotations", {}).get("meta.helm.sh/release-name") == installed
    ]
    assert sorted(kept) == ["edgenodes.edgerollout.dev", "modeldeployments.edgerollout.dev"]
    assert get(cluster, "edgenodes")["items"], "EdgeNodes are kept (a reinstall carries on)"
    assert get(cluster, "mdep", "-A")["items"], "ModelDeployments are kept"
