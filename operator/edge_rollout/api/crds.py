"""Render the CustomResourceDefinitions from the pydantic models (the single source of truth).

Pure: `render_crds()` returns plain dicts; `edge_rollout.api.generate` writes them to disk. The
pydantic JSON schema is translated into the structural OpenAPI v3 subset kube-apiserver accepts:
`$ref`/`$defs` are inlined, `null` alternatives dropped, `uniqueItems` becomes a set list type,
`int | str` becomes `x-kubernetes-int-or-string`, and titles are removed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel

from edge_rollout.api.common import GROUP, VERSION
from edge_rollout.api.edgenode import EdgeNodeSpec, EdgeNodeStatus
from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus

Schema = dict[str, Any]

_DROPPED_KEYS = {"title", "examples", "$defs"}


@dataclass(frozen=True)
class CrdInfo:
    """What a CRD needs besides the schema."""

    kind: str
    plural: str
    scope: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[dict[str, Any], ...]


def _ready_columns() -> tuple[dict[str, Any], ...]:
    return (
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        },
    )


KINDS: tuple[CrdInfo, ...] = (
    CrdInfo(
        kind="ModelDeployment",
        plural="modeldeployments",
        scope="Namespaced",
        short_names=("mdep",),
        spec=ModelDeploymentSpec,
        status=ModelDeploymentStatus,
        description="A model rolled out to edge nodes in health-gated waves, one variant per node.",
        columns=(
            {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
            {"name": "Version", "type": "string", "jsonPath": ".spec.model.version"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            *_ready_columns(),
            {"name": "Succeeded", "type": "integer", "jsonPath": ".status.counts.succeeded"},
            {"name": "Targeted", "type": "integer", "jsonPath": ".status.counts.targeted"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {
                "name": "Step",
                "type": "integer",
                "jsonPath": ".status.currentStepIndex",
                "priority": 1,
            },
            {
                "name": "Stable",
                "type": "string",
                "jsonPath": ".status.stableVersion",
                "priority": 1,
            },
            {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
        ),
    ),
    CrdInfo(
        kind="EdgeNode",
        plural="edgenodes",
        scope="Cluster",
        short_names=("en", "enode"),
        spec=EdgeNodeSpec,
        status=EdgeNodeStatus,
        description="An edge node: the models the operator wants on it and what its agent reports.",
        columns=(
            {"name": "Arch", "type": "string", "jsonPath": ".status.hardware.arch"},
            {
                "name": "Accelerator",
                "type": "string",
                "jsonPath": ".status.hardware.accelerators[0].class",
            },
            *_ready_columns(),
            {"name": "Heartbeat", "type": "date", "jsonPath": ".status.heartbeatTime"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {
                "name": "Memory",
                "type": "integer",
                "jsonPath": ".status.hardware.memoryBytes",
                "priority": 1,
            },
        ),
    ),
)


def render_crds() -> list[Schema]:
    """Every CRD of the API, as dicts ready to dump to YAML."""
    return [render_crd(info) for info in KINDS]


def render_crd(info: CrdInfo) -> Schema:
    """One CustomResourceDefinition."""
    singular = info.kind.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": singular,
                "shortNames": list(info.short_names),
                "categories": ["edge-rollout"],
            },
            "scope": info.scope,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(info.columns),
                    "schema": {"openAPIV3Schema": object_schema(info)},
                }
            ],
        },
    }


def object_schema(info: CrdInfo) -> Schema:
    """The openAPIV3Schema of a whole object: apiVersion, kind, metadata, spec, status."""
    spec = structural_schema(info.spec)
    if info.kind == "ModelDeployment":
        spec_required = True
    else:
        spec_required = False
        spec["default"] = {}
    schema: Schema = {
        "type": "object",
        "description": info.description,
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "API version: edgerollout.dev/v1alpha1.",
            },
            "kind": {"type": "string", "description": f"Kind: {info.kind}."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": structural_schema(info.status),
        },
    }
    if spec_required:
        schema["required"] = ["spec"]
    return schema


def structural_schema(model: type[BaseModel]) -> Schema:
    """A pydantic model's JSON schema translated into a structural CRD schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = cast(dict[str, Schema], raw.get("$defs", {}))
    return translate(raw, defs)


def translate(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Translate one JSON-schema node (recursively) into the apiserver's dialect."""
    node = _inline_ref(node, defs)
    any_of = node.get("anyOf")
    if any_of is not None:
        node = _collapse_any_of(node, any_of, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or key == "anyOf":
            continue
        if key == "properties":
            out[key] = {name: translate(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = translate(value, defs)
        elif key == "uniqueItems":
            out.setdefault("x-kubernetes-list-type", "set")
        elif key == "default" and value is None:
            continue
        elif key == "description":
            out[key] = " ".join(value.split())
        else:
            out[key] = copy.deepcopy(value)
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def _inline_ref(node: Schema, defs: dict[str, Schema]) -> Schema:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _inline_ref(merged, defs)


def _collapse_any_of(node: Schema, any_of: list[Schema], defs: dict[str, Schema]) -> Schema:
    """`X | None` becomes X; `int | str` becomes int-or-string; other unions are refused."""
    options = [_inline_ref(o, defs) for o in any_of if o.get("type") != "null"]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    if len(options) == 1:
        return {**options[0], **rest}
    types = sorted(o.get("type", "") for o in options)
    if types == ["integer", "string"]:
        return {**rest, "x-kubernetes-int-or-string": True}
    raise ValueError(f"cannot express union {any_of!r} in a structural CRD schema")
