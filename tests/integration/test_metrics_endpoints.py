"""Both /metrics endpoints during and after a real rollout and a delete (issue 13, part 5).

The operator runs as a process with --metrics-port, one real agent with --metrics-port serves a
small MLP published by the CLI. Every scrape passes `promtool check metrics` (Debian's
prometheus package); the info series follows phase and version with one labelset at a time, and
once the ModelDeployment is deleted neither endpoint exports a series of it.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.testing.controlplane import ControlPlane, free_port, stop_process
from tests.integration import fleet_support
from tests.integration.agent_fixtures import AgentProcess
from tests.integration.reporter import delete_nodes
from tests.integration.store_fixtures import publish_mlp
from tests.support import Kubectl

CLI = [sys.executable, "-m", "edge_rollout.cli.main"]
NODE = f"mx-{random.randrange(10**5):05d}"
LABELS = {"edgerollout.dev/test-fleet": "metrics"}
wait_for = fleet_support.wait_for
pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool missing: bash hack/install-debian-packages.sh (Debian package prometheus)",
)


@dataclass
class Endpoints:
    operator: str
    agent: str
    store: Path
    public_key: str


@pytest.fixture(scope="module")
def endpoints(
    control_plane: ControlPlane, kubectl: Kubectl, crds_installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Endpoints]:  # fmt: skip
    work = tmp_path_factory.mktemp("metrics")
    publish_mlp(work)
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": LABELS}}
    kubectl("apply", "-f", "-", input=json.dumps(node))
    port = free_port()
    operator = subprocess.Popen(
        [*CLI, "operator", "--standalone", f"--metrics-port={port}", "--metrics-address=127.0.0.1"],
        env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig),
             "EDGE_ROLLOUT_REPLAN_SECONDS": "1"},
        stdout=(work / "operator.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    agent = AgentProcess(NODE, control_plane.kubeconfig, work / "agent", work / "agent.log")
    agent.start()
    try:
        yield Endpoints(
            f"http://127.0.0.1:{port}/metrics",
            f"http://127.0.0.1:{agent.port}/metrics",
            work / "store",
            (work / "key.pub").read_text(),
        )
    finally:
        agent.kill(signal.SIGTERM)
        stop_process(operator)
        delete_nodes([NODE])


def scrape(url: str) -> str:
    """The exposition text, checked by promtool (which fails on any lint problem)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = str(response.read().decode())
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, f"promtool check metrics on {url}:\n{lint.stdout}{lint.stderr}"
    return text


def try_scrape(url: str) -> str:
    try:
        return scrape(url)
    except OSError:
        return ""


def scrape_until(url: str, done: Callable[[str], bool], timeout: float = 60.0) -> str:
    """Scrape `url` until `done` holds for the text; fails with the last text."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = scrape(url)
        if done(text):
            return text
        time.sleep(0.5)
    raise AssertionError(f"{url} never reached the expected state; last scrape:\n{text}")


def series(text: str, metric: str, /, **labels: str) -> list[str]:
    """Sample lines of `metric` whose labels include `labels`."""
    found = []
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            found.append(line)
    return found


def manifest(namespace: str, ep: Endpoints, version: str, **strategy: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "edgerollout.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "m", "namespace": namespace},
            "spec": {
                "model": {"name": "m", "version": version,
                          "store": {"url": f"file://{ep.store}", "publicKey": ep.public_key}},
                "nodeSelector": {"matchLabels": LABELS},
                "strategy": {"maxUnavailable": 1, "minReadySeconds": 0, **strategy},
            },
        }
    )  # fmt: skip


def info(text: str, namespace: str) -> list[str]:
    return series(text, "edge_rollout_modeldeployment_info", namespace=namespace, name="m")


def test_series_follow_a_rollout_and_vanish_with_the_deployment(
    endpoints: Endpoints, kubectl: Kubectl, namespace: str
) -> None:
    wait_for(lambda: try_scrape(endpoints.operator), "the operator's /metrics")
    model = f"{namespace}/m"
    kubectl("apply", "-f", "-", input=manifest(namespace, endpoints, "1.0"))
    ready = 'phase="Ready",step="0",version="1.0"'
    text = scrape_until(endpoints.operator, lambda t: any(ready in s for s in info(t, namespace)))
    assert len(info(text, namespace)) == 1, info(text, namespace)
    nodes = series(text, "edge_rollout_deployment_nodes", namespace=namespace, name="m")
    assert sorted(re.sub(r".*phase=\"(\w+)\".*} ", r"\1 ", s) for s in nodes) == [
        "failed 0.0", "pending 0.0", "succeeded 1.0"
    ], nodes  # fmt: skip
    assert series(text, "edge_rollout_deployment_nodes_targeted", namespace=namespace) == [
        f'edge_rollout_deployment_nodes_targeted{{name="m",namespace="{namespace}"}} 1.0'
    ]
    assert NODE not in text, "operator series carry no node names"
    agent = scrape(endpoints.agent)
    assert f'edge_rollout_agent_model_phase{{model="{model}",phase="Ready"}} 1.0' in agent
    assert "edge_rollout_agent_fetched_bytes_total" in agent

    kubectl("apply", "-f", "-", input=manifest(namespace, endpoints, "2.0", steps=[{"pause": {}}]))
    paused = 'phase="Paused",step="0",version="2.0"'
    text = scrape_until(endpoints.operator, lambda t: any(paused in s for s in info(t, namespace)))
    assert len(info(text, namespace)) == 1, "the Ready 1.0 labelset is gone"
    approve = {"spec": {"strategy": {"approved": {"version": "2.0", "throughStep": 64}}}}
    kubectl("patch", "mdep", "m", "-n", namespace, "--type", "merge", "-p", json.dumps(approve))
    ready2 = 'phase="Ready",step="1",version="2.0"'
    text = scrape_until(endpoints.operator, lambda t: any(ready2 in s for s in info(t, namespace)))
    assert len(info(text, namespace)) == 1, "the Paused labelset is gone"

    kubectl("delete", "mdep", "m", "-n", namespace, "--wait=true", "--timeout=60s")
    operator_left = scrape_until(endpoints.operator, lambda t: f'namespace="{namespace}"' not in t)
    assert "edge_rollout_plans_total" in operator_left
    scrape_until(endpoints.agent, lambda t: f'model="{model}"' not in t)


def test_temperature_is_exported_only_when_the_node_measures_it(
    endpoints: Endpoints, kubectl: Kubectl
) -> None:
    status = wait_for(
        lambda: json.loads(kubectl("get", "edgenode", NODE, "-o", "json").stdout).get("status"),
        "the agent's first report",
    )
    measured = status.get("hardware", {}).get("temperatureCelsius")
    text = scrape(endpoints.agent)
    lines = [s for s in text.splitlines() if s.startswith("edge_rollout_agent_temperature_celsius")]
    if measured is None:
        assert lines == []
    else:
        assert len(lines) == 1
        assert float(lines[0].split()[-1]) == pytest.approx(measured, abs=5)
