"""strategy.analysis against a real Prometheus (Debian's package) on loopback, scraping a real
agent and a real application, with the real apiserver, the operator and nginx.

The application (tests/fixtures/model_app.py) serves /healthz from `current/model.onnx` and
counts requests and 500s on /metrics; the test sends it a request every 0.2 s. Releases 1.0 and
2.0 are a 10-class and a 12-class classifier. The tolerant build serves both: the error ratio
stays 0 and the rollout moves past its step. The strict build (`--classes 10`) answers 500 on
2.0 (no appCheck, so the node goes Ready): the error ratio goes to 1, the analysis fails and the
rollout is rolled back, the query result in status.analysisRuns and in an AnalysisFailed Event.
With nothing listening at the address, the rollout stops with the address and field to fix.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from edge_rollout.testing.controlplane import ControlPlane
from tests.integration import fleet_support, store_fixtures
from tests.integration.agent_fixtures import AgentProcess, model_status
from tests.integration.reporter import delete_nodes
from tests.integration.store_fixtures import free_port
from tests.integration.test_app_health import start_app, store
from tests.support import Kubectl

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus missing: bash hack/install-debian-packages.sh (Debian package prometheus)",
)
NODE = f"analysis-{random.randrange(10**5):05d}"
LABEL = "edgerollout.dev/test-fleet"
nginx = store_fixtures.nginx
operator = fleet_support.operator
wait_for = fleet_support.wait_for
__all__ = ["nginx", "operator", "store"]

ERRORS = "sum(rate(model_app_errors_total[10s])) / sum(rate(model_app_requests_total[10s]))"


@dataclass
class Node:
    data_dir: Path
    metrics_port: int


@pytest.fixture
def node(control_plane: ControlPlane, kubectl: Kubectl, tmp_path: Path) -> Iterator[Node]:
    """One Node with a real agent (its /metrics on a free port)."""
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {LABEL: NODE}}}
    kubectl("apply", "-f", "-", input=json.dumps(body))
    agent = AgentProcess(NODE, control_plane.kubeconfig, tmp_path / "data", tmp_path / "a.log")
    agent.start()
    try:
        yield Node(tmp_path / "data", agent.port)
    finally:
        agent.kill(signal.SIGTERM)
        delete_nodes([NODE])


def prometheus(tmp: Path, targets: dict[str, int]) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on loopback scraping each target every second; its address once ready."""
    scrapes = [
        {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for job, port in targets.items()
    ]
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": scrapes}  # fmt: skip
    (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    process = subprocess.Popen(
        ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp / "prometheus.log").open("wb"),
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    wait_for(partial(_ready, address), "prometheus ready", timeout=60)
    return process, address


def _ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class Setup:
    address: str
    app_port: int


@pytest.fixture(params=["tolerant", "strict"])
def setup(
    request: pytest.FixtureRequest, namespace: str, node: Node, tmp_path: Path
) -> Iterator[Setup]:
    """The application (tolerant or strict build) under steady traffic, and Prometheus
    scraping it and the agent."""
    port = free_port()
    strict = ("--classes", "10") if request.param == "strict" else ()
    app = start_app(node.data_dir / "models" / namespace / "m", port, *strict)
    stop = threading.Event()
    traffic = threading.Thread(target=_traffic, args=(port, stop), daemon=True)
    traffic.start()
    server, address = prometheus(tmp_path, {"agent": node.metrics_port, "app": port})
    try:
        yield Setup(address, port)
    finally:
        stop.set()
        traffic.join(timeout=5)
        for process in (server, app):
            process.terminate()
            process.wait(timeout=30)


def _traffic(port: int, stop: threading.Event) -> None:
    while not stop.wait(0.2):
        # a 500 raises (the app counted it); before it listens nothing is counted
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()


def apply(kubectl: Kubectl, namespace: str, store: tuple[str, str], version: str,
          address: str, min_ready: int = 12) -> None:  # fmt: skip
    metrics = [
        {"name": "error-ratio", "query": ERRORS, "failureCondition": "result > 0.05",
         "interval": "2s", "count": 2},
        {"name": "agent-latency",
         "query": f'max(edge_rollout_agent_model_latency_p95_seconds{{model="{namespace}/m"}})',
         "successCondition": "result < 5", "interval": "2s", "count": 2, "failureLimit": 1},
    ]  # fmt: skip
    body = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {
            "model": {"name": "m", "version": version,
                      "store": {"url": store[0], "publicKey": store[1]}},
            "nodeSelector": {"matchLabels": {LABEL: NODE}},
            "selection": {"allowedVariants": ["fp32"]},
            "strategy": {"maxUnavailable": 1, "minReadySeconds": min_ready,
                         "progressDeadlineSeconds": 600, "steps": [{"setNodeCount": 1}],
                         "analysis": {"prometheus": {"address": address}, "metrics": metrics}},
        },
    }  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(body))


def status(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    out = kubectl("get", "mdep", "m", "-n", namespace, "-o", "json").stdout
    found: dict[str, Any] = json.loads(out).get("status") or {}
    return found


def events(kubectl: Kubectl, namespace: str, reason: str) -> list[str]:
    listing = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return [e["message"] for e in listing["items"] if e.get("reason") == reason]


def settled(kubectl: Kubectl, namespace: str, version: str) -> dict[str, Any] | None:
    found = status(kubectl, namespace)
    done = found.get("targetVersion") == version and found.get("phase") in (
        "Ready", "RolledBack", "Failed", "Degraded")  # fmt: skip
    return found if done else None


def run_of(found: dict[str, Any], version: str) -> dict[str, Any]:
    runs = [r for r in found.get("analysisRuns") or [] if r["version"] == version]
    assert len(runs) == 1, found.get("analysisRuns")
    run: dict[str, Any] = runs[0]
    return run


def values(run: dict[str, Any], metric: str) -> list[str]:
    result = next(r for r in run["metricResults"] if r["name"] == metric)
    return [m["value"] for m in result["measurements"]]


def test_the_analysis_decides_at_the_step_boundary(
    kubectl: Kubectl, namespace: str, store: tuple[str, str], node: Node, setup: Setup,
    operator: KopfRunner, request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    apply(kubectl, namespace, store, "1.0", setup.address)
    first = wait_for(partial(settled, kubectl, namespace, "1.0"), "1.0 settled", timeout=180)
    assert first["phase"] == "Ready", first  # both builds serve 1.0: the analysis passes
    assert run_of(first, "1.0")["phase"] == "Successful"
    apply(kubectl, namespace, store, "2.0", setup.address)
    found = wait_for(partial(settled, kubectl, namespace, "2.0"), "2.0 settled", timeout=180)
    run = run_of(found, "2.0")
    latency = [float(v) for v in values(run, "agent-latency")]
    assert latency, run  # the agent's own series, scraped by Prometheus
    assert all(0 < v < 5 for v in latency), latency
    if request.node.callspec.params["setup"] == "tolerant":
        assert (found["phase"], found["stableVersion"], run["phase"]) == (
            "Ready", "2.0", "Successful"), found  # fmt: skip
        assert [float(v) for v in values(run, "error-ratio")] == [0.0, 0.0], run
        assert any("every metric passed" in m for m in events(kubectl, namespace,
                                                             "AnalysisSuccessful"))  # fmt: skip
        assert (model_status(kubectl, NODE, f"{namespace}/m") or {}).get("version") == "2.0"
    else:
        assert (found["phase"], found["stableVersion"], run["phase"]) == (
            "RolledBack", "1.0", "Failed"), found  # fmt: skip
        ratio = values(run, "error-ratio")
        assert float(ratio[-1]) > 0.05, run
        reason = found["abortReason"]
        assert reason.startswith("analysis after step 0 (setNodeCount 1) failed:"), reason
        assert f"values [{ratio[-1]}]" in reason, reason
        assert "failureCondition result > 0.05 is true" in reason, reason
        failed = events(kubectl, namespace, "AnalysisFailed")
        assert any(ratio[-1] in m for m in failed), failed
        assert found["counts"]["failed"] == 0, found  # the node is fine; the metrics are not
        wait_for(lambda: (model_status(kubectl, NODE, f"{namespace}/m") or {}).get("version")
                 == "1.0", "the node back on 1.0", timeout=60)  # fmt: skip
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")


def test_an_unreachable_prometheus_stops_the_rollout_and_says_where(
    kubectl: Kubectl, namespace: str, store: tuple[str, str], node: Node, operator: KopfRunner
) -> None:
    """Nothing listens at the address: every measurement is inconclusive, more than failureLimit
    of them stop the rollout (a first install: Failed, the node keeps what it got), and the
    reason names the address and the field to fix."""
    address = f"http://127.0.0.1:{free_port()}"
    apply(kubectl, namespace, store, "1.0", address, min_ready=0)
    found = wait_for(partial(settled, kubectl, namespace, "1.0"), "1.0 settled", timeout=180)
    assert found["phase"] == "Failed", found
    reason = found["abortReason"]
    for text in (f"Prometheus at {address} is unreachable (Connection refused)",
                 "spec.strategy.analysis.prometheus.address", "1 of 1 measurements failed or"
                 " inconclusive, above failureLimit 0"):  # fmt: skip
        assert text in reason, reason
    latency = next(r for r in run_of(found, "1.0")["metricResults"] if r["name"] == "agent-latency")
    assert latency["inconclusive"] >= 1, latency  # asked once, answered for every metric
    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")


@pytest.mark.parametrize(
    ("metric", "refusal"),
    [
        pytest.param({"failureCondition": "0.05 < result"},
                     "must compare result with a number", id="number-first"),
        pytest.param({"failureCondition": "__import__('os').system('id')"},
                     "must compare result with a number", id="code"),
        pytest.param({"successCondition": "result > 1 and result < 2"},
                     "must compare result with a number", id="words"),
        pytest.param({"failureCondition": "result > 1", "count": 2, "failureLimit": 2},
                     "failureLimit must be below count", id="limit-at-count"),
        pytest.param({}, "a metric needs a successCondition or a failureCondition", id="none"),
    ],
)  # fmt: skip
def test_the_apiserver_refuses_what_the_operator_could_not_judge(
    kubectl: Kubectl, namespace: str, crds_installed: None, metric: dict[str, Any], refusal: str
) -> None:
    """The CRD's CEL rules (the same grammar as core/thresholds) refuse at apply time."""
    body: dict[str, Any] = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "refused", "namespace": namespace},
        "spec": {
            "model": {"name": "m", "version": "1.0", "store": {"url": "http://127.0.0.1:1/s"}},
            "strategy": {"analysis": {"prometheus": {"address": "http://127.0.0.1:9090"},
                         "metrics": [{"name": "m", "query": "up", **metric}]}},
        },
    }  # fmt: skip
    result = kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0, result.stdout
    assert refusal in result.stderr, result.stderr
    accepted = {**metric, "failureCondition": "result[0] >= 0.9 && result <= 1 || result == -1"}
    accepted.pop("successCondition", None)
    accepted.update(count=3, failureLimit=2)
    body["spec"]["strategy"]["analysis"]["metrics"] = [{"name": "m", "query": "up", **accepted}]
    kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(body))
