"""The CRD renderer emits only what kube-apiserver accepts in a structural schema."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from edge_rollout.api import crds
from edge_rollout.api.modeldeployment import ModelDeployment
from tests.support import REPO

FORBIDDEN = {
    "$ref",
    "$defs",
    "definitions",
    "anyOf",
    "oneOf",
    "allOf",
    "title",
    "uniqueItems",
    "const",
    "examples",
}


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found.extend(walk(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(walk(value, f"{path}[{i}]"))
    return found


@pytest.mark.parametrize("crd", crds.render_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        if path.endswith((".properties", "x-kubernetes-validations")):
            continue
        assert not FORBIDDEN & node.keys(), f"{path} has {FORBIDDEN & node.keys()}"
        if "properties" in node or "items" in node:
            assert node.get("type") in ("object", "array"), f"{path} lacks a type"
        if "type" in node:
            assert node["type"] != "null", path


@pytest.mark.parametrize("crd", crds.render_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_every_field_has_a_description(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema["properties"]["spec"], "spec"):
        for name, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{path}.{name} has no description"


def test_conditions_have_the_standard_shape() -> None:
    md = crds.render_crds()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    conditions = md["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) >= {"type", "status", "lastTransitionTime", "reason"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


def test_int_or_string_union_is_translated() -> None:
    md = crds.render_crds()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    max_unavailable = md["properties"]["spec"]["properties"]["strategy"]["properties"][
        "maxUnavailable"
    ]
    assert max_unavailable["x-kubernetes-int-or-string"] is True
    assert "type" not in max_unavailable


def test_unsupported_union_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot express union"):
        crds.translate({"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, {})


@pytest.mark.parametrize(
    "path", sorted((REPO / "manifests" / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_parse_as_api_models(path: Any) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if document and document.get("kind") == "ModelDeployment":
            ModelDeployment.model_validate(document)


@pytest.mark.parametrize("crd", crds.render_crds(), ids=lambda c: c["spec"]["names"]["kind"])
def test_no_field_is_refused_with_a_bare_regex(crd: dict[str, Any]) -> None:
    """kube-apiserver reports a failed `pattern` as the regex itself: formats are CEL rules with
    words instead, and every rule says what to fix."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        if path.endswith(".properties"):
            continue
        assert "pattern" not in node, f"{path} has a bare pattern: use a TextFormat"
        for rule in node.get("x-kubernetes-validations", []):
            assert rule.get("message"), f"{path}: {rule['rule']} has no message"
