"""Every failure of a ModelDeployment handler is seen, against the real apiserver (issue 15.2).

Failures are injected for real: a ValidatingAdmissionPolicy makes the apiserver refuse the
operator's writes to one EdgeNode, and a status field the planner cannot parse makes it raise a
ValueError. Each shows as a log line naming the object and the error, a Warning Event on the
ModelDeployment and a condition with the reason and the message; a refused EdgeNode does not hold
up the rest of the rollout, nor (once allowed again) a deletion.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from tests.integration import fleet_support
from tests.integration.reporter import ScriptedReporter, delete_nodes
from tests.support import Kubectl
from tests.unit.core.fixtures import hardware

OK, REFUSED = "hf-ok", "hf-refused"
LABELS = {"edgerollout.dev/test-fleet": "handler-failures"}
POLICY = "edge-rollout-test-refuse-edgenode"
operator = fleet_support.operator
wait_for = fleet_support.wait_for
entries = fleet_support.entries


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return fleet_support.publish_index_store(tmp_path_factory.mktemp("store"), ["1.0"])


@pytest.fixture(scope="module")
def fleet(crds_installed: None) -> Iterator[ScriptedReporter]:
    reporter = ScriptedReporter({n: hardware("cpu") for n in (OK, REFUSED)}, labels=LABELS,
                                delay=0.3)  # fmt: skip
    reporter.start()
    yield reporter
    reporter.stop()
    delete_nodes(reporter.hardware)


class Refusal:
    """A ValidatingAdmissionPolicy that refuses every write of EdgeNode hf-refused's object (its
    status, which the agent writes, stays writable)."""

    def __init__(self, kubectl: Kubectl) -> None:
        self.kubectl = kubectl

    def __enter__(self) -> Refusal:
        self.kubectl("apply", "-f", "-", input=json.dumps(_policy()))
        self.kubectl("apply", "-f", "-", input=json.dumps(_binding()))
        wait_for(self._refused, "the admission policy to take effect", timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.kubectl("delete", "validatingadmissionpolicybinding", POLICY, "--ignore-not-found")
        self.kubectl("delete", "validatingadmissionpolicy", POLICY, "--ignore-not-found")
        wait_for(lambda: not self._refused(), "the admission policy to be gone", timeout=30)

    def _refused(self) -> bool:
        probe = json.dumps({"metadata": {"annotations": {"probe": str(time.time())}}})
        result = self.kubectl("patch", "edgenode", REFUSED, "--type", "merge", "-p", probe,
                              "--dry-run=server", check=False)  # fmt: skip
        return "denied request" in result.stderr


def _policy() -> dict[str, Any]:
    rules = [{"apiGroups": ["edgerollout.dev"], "apiVersions": ["*"],
              "operations": ["CREATE", "UPDATE"], "resources": ["edgenodes"]}]  # fmt: skip
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": rules},
            "validations": [
                {
                    "expression": f"object.metadata.name != '{REFUSED}'",
                    "message": "the test refuses writes to this EdgeNode",
                }
            ],
        },
    }


def _binding() -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY},
        "spec": {"policyName": POLICY, "validationActions": ["Deny"]},
    }


def deployment(namespace: str, store: tuple[Path, str]) -> str:
    root, public_key = store
    return json.dumps(
        {
            "apiVersion": "edgerollout.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "m", "namespace": namespace},
            "spec": {
                "model": {
                    "name": "m",
                    "version": "1.0",
                    "store": {"url": f"file://{root}", "publicKey": public_key},
                },
                "nodeSelector": {"matchLabels": LABELS},
                "strategy": {"maxUnavailable": 2, "minReadySeconds": 0},
            },
        }
    )


def body(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    result = kubectl("get", "mdep", "m", "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def condition(kubectl: Kubectl, namespace: str, type_: str) -> dict[str, Any]:
    conditions = body(kubectl, namespace).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), {})


def warnings(kubectl: Kubectl, namespace: str, reason: str) -> list[str]:
    listing = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return [
        e["message"]
        for e in listing["items"]
        if e["type"] == "Warning"
        and e["reason"] == reason
        and e["involvedObject"]["kind"] == "ModelDeployment"
        and e["involvedObject"]["name"] == "m"
    ]


def test_a_refused_edgenode_write_is_logged_posted_and_in_a_condition_and_the_rest_proceeds(
    caplog: pytest.LogCaptureFixture,
    operator: KopfRunner,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
) -> None:
    with Refusal(kubectl):
        kubectl("apply", "-f", "-", input=deployment(namespace, store))
        written = wait_for(
            lambda: (
                condition(kubectl, namespace, "EdgeNodesWritten").get("status") == "False"
                and condition(kubectl, namespace, "EdgeNodesWritten")
            ),
            "the EdgeNodesWritten condition",
        )
        assert written["reason"] == "EdgeNodeWriteFailed"
        assert f"EdgeNode {REFUSED}: HTTP 422" in written["message"]
        assert "the test refuses writes to this EdgeNode" in written["message"]
        # The other node got its entry and serves; the status is written (observedGeneration).
        wait_for(lambda: entries(kubectl, namespace).keys() == {OK}, f"{OK}'s entry")
        wait_for(
            lambda: body(kubectl, namespace)["status"].get("counts", {}).get("succeeded") == 1,
            f"{OK} counted as updated",
        )
        assert body(kubectl, namespace)["status"]["observedGeneration"] == 1
        events = wait_for(lambda: warnings(kubectl, namespace, "EdgeNodeWriteFailed"), "event")
        assert all(f"EdgeNode {REFUSED}: HTTP 422" in e for e in events), events
        assert f"edgenode {REFUSED}: {namespace}/m -> 1.0/fp32 failed: HTTP 422" in caplog.text
    fixed = wait_for(
        lambda: condition(kubectl, namespace, "EdgeNodesWritten").get("status") == "True",
        "the condition to clear once the writes are allowed",
        timeout=30,
    )
    assert fixed
    assert entries(kubectl, namespace).keys() == {OK, REFUSED}
    kubectl("delete", "mdep", "m", "-n", namespace, "--timeout=30s")


def test_a_deletion_that_cannot_remove_an_entry_says_so_and_finishes_once_it_can(
    operator: KopfRunner,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
) -> None:
    kubectl("apply", "-f", "-", input=deployment(namespace, store))
    wait_for(lambda: entries(kubectl, namespace).keys() == {OK, REFUSED}, "both entries")
    with Refusal(kubectl):
        kubectl("delete", "mdep", "m", "-n", namespace, "--wait=false")
        written = wait_for(
            lambda: (
                condition(kubectl, namespace, "EdgeNodesWritten").get("status") == "False"
                and condition(kubectl, namespace, "EdgeNodesWritten")
            ),
            "the condition on the deployment being deleted",
        )
        assert f"EdgeNode {REFUSED}: HTTP 422" in written["message"]
        assert wait_for(lambda: warnings(kubectl, namespace, "EdgeNodeWriteFailed"), "event")
        assert entries(kubectl, namespace).keys() == {REFUSED}
        assert body(kubectl, namespace), "deleted before its entries were removed"
    wait_for(lambda: not body(kubectl, namespace), "the deletion to finish", timeout=30)
    assert entries(kubectl, namespace) == {}


def test_an_exception_in_planning_is_logged_posted_and_stalls_with_the_error(
    caplog: pytest.LogCaptureFixture,
    operator: KopfRunner,
    kubectl: Kubectl,
    namespace: str,
    store: tuple[Path, str],
    fleet: ScriptedReporter,
) -> None:
    kubectl("apply", "-f", "-", input=deployment(namespace, store))
    wait_for(lambda: body(kubectl, namespace).get("status", {}).get("phase") == "Ready", "Ready")
    garbage = json.dumps({"status": {"targetVersion": "1.0", "stepStartedAt": "yesterday"}})
    kubectl("patch", "mdep", "m", "-n", namespace, "--subresource=status", "--type=merge",
            "-p", garbage)  # fmt: skip
    stalled = wait_for(
        lambda: (
            condition(kubectl, namespace, "Stalled").get("status") == "True"
            and condition(kubectl, namespace, "Stalled")
        ),
        "Stalled",
    )
    assert stalled["reason"] == "HandlerFailed"
    assert stalled["message"].startswith("ValueError: Invalid isoformat string: 'yesterday'")
    events = wait_for(lambda: warnings(kubectl, namespace, "HandlerFailed"), "event")
    assert all("ValueError: Invalid isoformat string: 'yesterday'" in e for e in events), events
    assert f"modeldeployment {namespace}/m: HandlerFailed: ValueError" in caplog.text
    kubectl("delete", "mdep", "m", "-n", namespace, "--timeout=30s")
