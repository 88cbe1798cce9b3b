"""The operator, run with KopfRunner against the real apiserver, observes every generation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner

from tests.integration.test_crds import with_change
from tests.support import Kubectl


@pytest.fixture
def operator(crds_installed: None) -> Iterator[KopfRunner]:
    args = ["run", "-A", "--standalone", "-m", "edge_rollout.controller.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"condition not met within {timeout}s")


def status_of(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    out = kubectl("get", "mdep", "magika", "-n", namespace, "-o", "json").stdout
    document: dict[str, Any] = json.loads(out)
    return document


def observed(kubectl: Kubectl, namespace: str, generation: int) -> dict[str, Any] | None:
    document = status_of(kubectl, namespace)
    status = document.get("status", {})
    if status.get("observedGeneration") != generation:
        return None
    return document


def test_operator_sets_observed_generation_and_ready_then_follows_a_spec_change(
    operator: KopfRunner, kubectl: Kubectl, namespace: str
) -> None:
    document = with_change("metadata.namespace", namespace)
    kubectl("apply", "-f", "-", input=json.dumps(document))
    first = wait_for(lambda: observed(kubectl, namespace, 1))
    conditions = {c["type"]: c for c in first["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["observedGeneration"] == 1
    assert conditions["Reconciling"]["status"] == "True"
    assert first["status"]["targetVersion"] == "1.0.0"

    document["spec"]["model"]["version"] = "1.1.0"
    kubectl("apply", "-f", "-", input=json.dumps(document))
    second = wait_for(lambda: observed(kubectl, namespace, 2))
    ready = {c["type"]: c for c in second["status"]["conditions"]}["Ready"]
    assert ready["observedGeneration"] == 2
    assert ready["lastTransitionTime"] == conditions["Ready"]["lastTransitionTime"]
    assert second["status"]["targetVersion"] == "1.1.0"
    annotations = second["metadata"].get("annotations", {})
    assert any(key.startswith("edgerollout.dev/") for key in annotations), annotations
