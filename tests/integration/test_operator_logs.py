"""What `kubectl logs deploy/<release>-operator` shows: the operator process (as the Deployment
runs it) through a small rollout with steps and an abort, its log read line by line.

Every line is one JSON object (`--log-format json`); the deployment's lines name it; the steps,
the abort and its rollback are there as the Events the operator posted; the replan timer's
success line is not (it is DEBUG).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.testing.controlplane import ControlPlane, stop_process
from tests.integration import fleet_support, test_operator
from tests.integration.reporter import ScriptedReporter, delete_nodes, fleet_hardware
from tests.support import Kubectl

FLEET = 10
LABELS = {"edgerollout.dev/test-fleet": "operator-logs"}
wait_for = fleet_support.wait_for


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return fleet_support.publish_index_store(tmp_path_factory.mktemp("store"), ["1.0", "3.0"])


@pytest.fixture(scope="module")
def fleet(crds_installed: None) -> Iterator[ScriptedReporter]:
    reporter = ScriptedReporter(fleet_hardware(FLEET), labels=LABELS, delay=0.2)
    reporter.start()
    yield reporter
    reporter.stop()
    delete_nodes(reporter.hardware)


class OperatorProcess:
    """`edge-rollout operator` as a process, its stderr in a file."""

    def __init__(self, log: Path, plane: ControlPlane, *flags: str) -> None:
        self.log = log
        argv = [sys.executable, "-m", "edge_rollout.cli.main", "operator", "--standalone", *flags]
        env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig),
               "EDGE_ROLLOUT_REPLAN_SECONDS": "1"}  # fmt: skip
        with log.open("w") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip

    def wait_running(self) -> None:
        deadline = time.monotonic() + 60
        while "operator running" not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)

    def stop(self) -> list[str]:
        stop_process(self.proc)
        return self.log.read_text().splitlines()


def manifest(namespace: str, store: tuple[Path, str], version: str) -> str:
    """test_operator's ModelDeployment, named `logged`, on this module's small fleet."""
    document = json.loads(
        test_operator.manifest(namespace, store, version, steps=[{"setNodePercent": 50}])
    )
    document["metadata"]["name"] = "logged"
    document["spec"]["nodeSelector"] = {"matchLabels": LABELS}
    document["spec"]["strategy"]["maxUnavailable"] = 2
    document["spec"]["abort"]["criteria"][0]["minNumberOfExecutedNodes"] = 2
    return json.dumps(document)


def test_json_log_names_the_deployment_and_shows_steps_and_the_abort(
    control_plane: ControlPlane,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
    tmp_path: Path,
) -> None:
    operator = OperatorProcess(tmp_path / "operator.log", control_plane, "--log-format=json")
    try:
        operator.wait_running()
        kubectl("apply", "-f", "-", input=manifest(namespace, store, "1.0"))
        wait_for(status_phase(kubectl, namespace, "Ready"), what="v1 Ready")
        fleet.broken |= {f"3.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu")}
        kubectl("apply", "-f", "-", input=manifest(namespace, store, "3.0"))
        wait_for(status_phase(kubectl, namespace, "RolledBack"), what="RolledBack")
    finally:
        lines = operator.stop()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    ours = [r for r in records if r.get("object", {}).get("name") == "logged"]
    assert all(r["object"] == {"kind": "ModelDeployment", "namespace": namespace,
                               "name": "logged"} for r in ours)  # fmt: skip
    messages = [(r["level"], r["message"]) for r in ours]
    assert ("info", "Handler 'modeldeployment_changed' succeeded.") in messages
    assert any(
        m.startswith("event Normal StepCompleted: step 0 (setNodePercent 50) complete")
        for _, m in messages
    )
    assert any(m.startswith("event Normal RolloutComplete: ") for _, m in messages)
    assert any(
        level == "warning" and m.startswith("event Warning RolloutAborted: ")
        for level, m in messages
    )
    assert any(m.startswith("event Warning RolledBack: ") for _, m in messages)
    assert not any("Timer 'modeldeployment_replan' succeeded." in m for _, m in messages)
    running = "operator running: watching ModelDeployments in all namespaces (standalone)"
    assert any(r["message"] == running and "object" not in r for r in records)


def test_text_log_is_one_line_per_record_prefixed_with_the_object(
    control_plane: ControlPlane,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
    tmp_path: Path,
) -> None:
    operator = OperatorProcess(tmp_path / "operator.log", control_plane, "--log-level=info")
    try:
        operator.wait_running()
        bad = json.loads(manifest(namespace, store, "1.0"))
        bad["spec"]["model"]["version"] = "9.9"  # not in the store
        kubectl("apply", "-f", "-", input=json.dumps(bad))
        wait_for(lambda: _has(operator.log, "event Warning"), what="the stall's Warning event")
    finally:
        lines = operator.stop()
    label = f"ModelDeployment {namespace}/logged: "
    stalled = [line for line in lines if label in line and " WARNING " in line]
    assert stalled, "\n".join(lines)
    assert any("9.9" in line for line in stalled)
    assert all(line[:4].isdigit() for line in lines), "\n".join(lines)  # no continuation lines


def _has(log: Path, text: str) -> bool:
    return text in log.read_text()


def status_phase(kubectl: Kubectl, namespace: str, phase: str) -> Any:
    def check() -> Any:
        out = kubectl("get", "mdep", "logged", "-n", namespace, "-o", "json").stdout
        found = json.loads(out).get("status", {})
        return found if found.get("phase") == phase else None

    return check
