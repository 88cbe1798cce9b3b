"""The generated CRDs in a real kube-apiserver: installed, explained, and refusing bad input."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from tests.support import REPO, Kubectl

EXAMPLE = REPO / "manifests" / "examples" / "modeldeployment.yaml"


def example() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return document


def with_change(path: str, value: Any) -> dict[str, Any]:
    """The example with the field at dotted `path` set to `value` (None deletes it)."""
    document = copy.deepcopy(example())
    *parents, last = path.split(".")
    node: Any = document
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return document


INVALID = [
    pytest.param(
        with_change("spec.priority", "high"), ["spec.priority", "integer"], id="wrong-type"
    ),
    pytest.param(
        with_change("spec.model.version", None),
        ["spec.model.version", "Required"],
        id="missing-version",
    ),
    pytest.param(with_change("spec", None), ["spec", "Required"], id="missing-spec"),
    pytest.param(
        with_change("spec.selection.prefer", "fastest"),
        ["spec.selection.prefer", "quality", "latency", "size"],
        id="bad-enum",
    ),
    pytest.param(
        with_change("spec.strategy.steps.2.setNodePercent", 150),
        ["spec.strategy.steps[2].setNodePercent", "less than or equal to 100"],
        id="percent-over-100",
    ),
    pytest.param(
        with_change("spec.strategy.maxUnavailable", "120%"),
        ["spec.strategy.maxUnavailable", "percentage from 0% to 100%"],
        id="max-unavailable-over-100",
    ),
    pytest.param(
        with_change("spec.strategy.steps.1.pause.duration", "-5m"),
        ["spec.strategy.steps[1].pause.duration", "like 30s, 10m or 1h30m"],
        id="negative-duration",
    ),
    pytest.param(
        with_change("spec.strategy.steps.1.pause.duration", "ten minutes"),
        ["spec.strategy.steps[1].pause.duration", "like 30s, 10m or 1h30m"],
        id="malformed-duration",
    ),
    pytest.param(
        with_change("spec.strategy.steps.2.name", "canary"),
        ["spec.strategy.steps", "step names must be unique"],
        id="duplicate-step-name",
    ),
    pytest.param(
        with_change("spec.strategy.steps.2", {"setNodePercent": 50, "pause": {}}),
        ["spec.strategy.steps[2]", "exactly one of setNodePercent, setNodeCount or pause"],
        id="step-with-two-actions",
    ),
    pytest.param(
        with_change("spec.selection.allowedVariants", ["int8", "int8"]),
        ["spec.selection.allowedVariants[1]", "Duplicate value"],
        id="duplicate-variant-name",
    ),
    pytest.param(
        with_change(
            "spec.nodeSelector.matchExpressions",
            [{"key": "edge", "operator": "Equals", "values": ["x"]}],
        ),
        ["spec.nodeSelector.matchExpressions[0].operator", "In", "NotIn"],
        id="selector-bad-operator",
    ),
    pytest.param(
        with_change("spec.nodeSelector.matchExpressions", [{"key": "edge", "operator": "In"}]),
        ["spec.nodeSelector.matchExpressions[0]", "need at least one value"],
        id="selector-in-without-values",
    ),
    pytest.param(
        with_change("spec.nodeSelector.matchLabels", {"bad key!": "x"}),
        ["spec.nodeSelector.matchLabels", "must be a label key such as edge"],
        id="selector-bad-key",
    ),
    pytest.param(
        with_change("spec.model.store.url", "ftp://models.example.com"),
        ["spec.model.store.url", "http://, https:// or file:///"],
        id="store-url-scheme",
    ),
    pytest.param(
        with_change("spec.abort.criteria.0.thresholdPercentage", -1),
        ["spec.abort.criteria[0].thresholdPercentage", "greater than or equal to 0"],
        id="negative-threshold",
    ),
    pytest.param(
        with_change("spec.updatePolicy.delivery.delta", "Off"),
        ["spec.updatePolicy.delivery", "metered: DeltaOnly needs deltas"],
        id="conflicting-delivery-policy",
    ),
    pytest.param(
        with_change("spec.updatePolicy.window.startTime", "25:00"),
        ["spec.updatePolicy.window.startTime", "24-hour time HH:MM", 'got "25:00"'],
        id="bad-window-time",
    ),
    pytest.param(
        with_change("spec.model.name", "Magika"),
        ["spec.model.name", "must be lowercase letters, digits", "like resnet50-int8"],
        id="model-name-uppercase",
    ),
    pytest.param(
        with_change("spec.model.version", "1.0 beta"),
        ["spec.model.version", "like 1.4.0", 'got "1.0 beta"'],
        id="version-with-space",
    ),
    pytest.param(
        with_change("spec.strategy.approved", {"version": "2.0/../x", "throughStep": 1}),
        ["spec.strategy.approved.version", "like 1.4.0", 'got "2.0/../x"'],
        id="approved-version-path",
    ),
    pytest.param(
        with_change(
            "spec.nodeSelector.matchExpressions",
            [{"key": "region", "operator": "In", "values": ["eu west"]}],
        ),
        ["spec.nodeSelector.matchExpressions[0].values", "every value must be a label value"],
        id="selector-bad-value",
    ),
    pytest.param(
        with_change("spec.updatePolicy.delivery.maxBandwidth", "fast"),
        ["spec.updatePolicy.delivery.maxBandwidth", "optional k, Ki, M, Mi, G or Gi suffix"],
        id="bandwidth-in-words",
    ),
    pytest.param(
        with_change("spec.strategy.steps.2.name", "Canary Two"),
        ["spec.strategy.steps[2].name", "like canary"],
        id="step-name-with-space",
    ),
    pytest.param(
        with_change(
            "spec.nodeSelector.matchExpressions",
            [{"key": "bad key!", "operator": "Exists"}],
        ),
        ["spec.nodeSelector.matchExpressions[0].key", "must be a label key such as edge"],
        id="selector-expression-bad-key",
    ),
    pytest.param(
        with_change("spec.updatePolicy.window.endTime", "00:00"),
        ["spec.updatePolicy.window", "startTime and endTime must differ"],
        id="empty-window",
    ),
]


def test_crds_are_established_and_example_applies(
    kubectl: Kubectl, crds_installed: None, namespace: str
) -> None:
    document = with_change("metadata.namespace", namespace)
    kubectl("apply", "-f", "-", input=json.dumps(document))
    got = json.loads(kubectl("get", "mdep", "magika", "-n", namespace, "-o", "json").stdout)
    assert got["spec"]["strategy"]["maxUnavailable"] == "25%"
    assert got["spec"]["healthGate"]["minAgreement"] == 1  # defaulted by the apiserver


@pytest.mark.parametrize(("document", "fragments"), INVALID)
def test_invalid_modeldeployment_is_refused_with_a_message_saying_what_to_fix(
    kubectl: Kubectl,
    crds_installed: None,
    namespace: str,
    document: dict[str, Any],
    fragments: list[str],
) -> None:
    document = copy.deepcopy(document)
    document["metadata"]["namespace"] = namespace
    result = kubectl("apply", "-f", "-", input=json.dumps(document), check=False)
    assert result.returncode != 0, f"accepted: {document}"
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"


def test_model_name_cannot_change_after_creation(
    kubectl: Kubectl, crds_installed: None, namespace: str
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(with_change("metadata.namespace", namespace)))
    renamed = with_change("spec.model.name", "other-model")
    renamed["metadata"]["namespace"] = namespace
    result = kubectl("apply", "-f", "-", input=json.dumps(renamed), check=False)
    assert result.returncode != 0
    assert "spec.model.name" in result.stderr
    assert "create a new ModelDeployment" in result.stderr


def test_edgenode_is_cluster_scoped_and_defaults_its_spec(
    kubectl: Kubectl, crds_installed: None
) -> None:
    node = {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "EdgeNode",
        "metadata": {"name": "edge-crd-test"},
    }
    kubectl("apply", "-f", "-", input=json.dumps(node))
    got = json.loads(kubectl("get", "edgenode", "edge-crd-test", "-o", "json").stdout)
    # `models` defaults to [] (never null): removing the last entry by server-side apply then
    # leaves a valid object whoever created it (docs/troubleshooting.md, "Terminating").
    assert got["spec"] == {"models": []}
    assert "namespace" not in got["metadata"]


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        pytest.param("modeldeployment.spec", "Desired state of a ModelDeployment", id="spec"),
        pytest.param(
            "modeldeployment.spec.strategy.maxUnavailable",
            "Most nodes updating or failed at once",
            id="max-unavailable",
        ),
        pytest.param(
            "edgenode.status.hardware.accelerators", "NPUs and GPUs found", id="edgenode-hardware"
        ),
    ],
)
def test_kubectl_explain_shows_the_field_docs(
    kubectl: Kubectl, crds_installed: None, resource: str, expected: str
) -> None:
    out = kubectl("explain", resource).stdout
    assert expected in out


def test_printer_columns_show_model_version_and_ready(
    kubectl: Kubectl, crds_installed: None, namespace: str
) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(with_change("metadata.namespace", namespace)))
    header = kubectl("get", "mdep", "-n", namespace).stdout.splitlines()[0].split()
    assert header[:5] == ["NAME", "MODEL", "VERSION", "PHASE", "READY"]
