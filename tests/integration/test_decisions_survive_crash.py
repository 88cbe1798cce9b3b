"""An abort survives an operator that dies right after deciding it (issue 14.8).

The operator runs as a process; the test seam EDGE_ROLLOUT_TEST_CRASH_AFTER=abort-decided makes it
exit (os._exit, like a SIGKILL) between the two writes of the plan that decides the abort. After a
restart no node may be asked for the aborted version again: a watch records every EdgeNode spec.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import watch
from urllib3.exceptions import ProtocolError

from edge_rollout.kube import client as kube_client
from edge_rollout.testing.controlplane import ControlPlane, stop_process
from tests.integration import fleet_support, test_operator
from tests.integration.reporter import ScriptedReporter, delete_nodes, fleet_hardware
from tests.support import Kubectl

FLEET = 8
LABELS = {"edgerollout.dev/test-fleet": "decisions"}
BROKEN = {f"3.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu")}
wait_for = fleet_support.wait_for


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return fleet_support.publish_index_store(tmp_path_factory.mktemp("store"), ["1.0", "3.0"])


@pytest.fixture
def fleet(crds_installed: None) -> Iterator[ScriptedReporter]:
    reporter = ScriptedReporter(fleet_hardware(FLEET), labels=LABELS, delay=0.5)
    reporter.start()
    yield reporter
    reporter.stop()
    delete_nodes(reporter.hardware)


def manifest(namespace: str, store: tuple[Path, str], version: str) -> str:
    """test_operator's ModelDeployment on this module's fleet: 2 nodes at a time, aborted when
    half of at least 2 finished nodes failed."""
    document = json.loads(test_operator.manifest(namespace, store, version))
    document["spec"]["nodeSelector"] = {"matchLabels": LABELS}
    document["spec"]["strategy"]["maxUnavailable"] = 2
    document["spec"]["abort"]["criteria"] = [
        {"thresholdPercentage": 50, "minNumberOfExecutedNodes": 2}
    ]
    return json.dumps(document)


class SpecWatch:
    """Every version each node's entry of `<namespace>/m` was set to, in order."""

    def __init__(self, namespace: str) -> None:
        self.key = f"{namespace}/m"
        self.asked: dict[str, list[str]] = {}
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SpecWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._watch.stop()  # type: ignore[no-untyped-call]
        self._thread.join(timeout=10)

    def _run(self) -> None:
        api = kube_client.custom_objects(kube_client.api_client())
        stream = self._watch.stream(  # type: ignore[no-untyped-call]
            api.list_cluster_custom_object, "edgerollout.dev", "v1alpha1", "edgenodes"
        )
        with contextlib.suppress(ProtocolError):  # stop() closes the stream under us
            for event in stream:
                self._record(event["object"])

    def _record(self, item: dict[str, Any]) -> None:
        entry = next(
            (m for m in (item.get("spec") or {}).get("models") or [] if m["name"] == self.key), None
        )
        if entry is None:
            return
        versions = self.asked.setdefault(item["metadata"]["name"], [])
        if not versions or versions[-1] != entry["version"]:
            versions.append(entry["version"])


def start_operator(plane: ControlPlane, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_rollout.cli.main", "operator", "--standalone"],
            env={
                **os.environ,
                "KUBECONFIG": str(plane.kubeconfig),
                "EDGE_ROLLOUT_REPLAN_SECONDS": "1",
                **env,
            },
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


status = test_operator.status


def test_abort_decided_just_before_a_crash_is_not_forgotten(
    control_plane: ControlPlane,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
    tmp_path: Path,
) -> None:
    log = tmp_path / "operator.log"
    operator = start_operator(control_plane, log)
    try:
        kubectl("apply", "-f", "-", input=manifest(namespace, store, "1.0"))
        wait_for(lambda: status(kubectl, namespace).get("phase") == "Ready", what="1.0 Ready")
    finally:
        stop_process(operator)
    fleet.broken |= BROKEN
    with SpecWatch(namespace) as specs:
        crashing = start_operator(control_plane, log, EDGE_ROLLOUT_TEST_CRASH_AFTER="abort-decided")
        try:
            kubectl("apply", "-f", "-", input=manifest(namespace, store, "3.0"))
            assert crashing.wait(timeout=120) == 137, log.read_text()[-3000:]
        finally:
            stop_process(crashing)
        decided = dict((n, list(v)) for n, v in specs.asked.items())
        restarted = start_operator(control_plane, log)
        try:
            rolled = wait_for(
                lambda: (
                    status(kubectl, namespace).get("phase") == "RolledBack"
                    and all(v[-1] == "1.0" for v in specs.asked.values())
                    and status(kubectl, namespace)
                ),
                what="RolledBack, every node asked for 1.0",
            )
        finally:
            stop_process(restarted)
    assert "abort threshold" in rolled["abortReason"]
    tried = {n for n, v in decided.items() if "3.0" in v}
    assert len(tried) >= 2, decided
    asked_again = {
        n: v for n, v in specs.asked.items() if v.count("3.0") > decided.get(n, []).count("3.0")
    }
    assert asked_again == {}, f"asked for the aborted 3.0 again after the restart: {specs.asked}"
