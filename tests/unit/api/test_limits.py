"""The largest ModelDeployment spec the CRD admits fits where Kubernetes keeps it: kubectl's
last-applied annotation (annotations share 256 KiB) and the object (1.5 MiB), with Kopf's state
(a digest of the spec, controller/settings.py) beside it."""

from __future__ import annotations

import json
from typing import Any

from edge_rollout.api.crds import render_crds
from edge_rollout.api.modeldeployment import SMALL_SELECTOR_LIMITS

KIB = 1024
ANNOTATIONS_LIMIT = 256 * KIB
LABEL_KEY = 317


def largest(schema: dict[str, Any]) -> Any:
    """A value with every string at maxLength and every list and map at its most items."""
    kind = schema.get("type")
    if "properties" in schema:
        return {k: largest(v) for k, v in schema["properties"].items()}
    if kind == "array":
        return [largest(schema["items"]) for _ in range(schema["maxItems"])]
    if kind == "object":
        value = largest(schema["additionalProperties"])
        return {f"{i:0{LABEL_KEY}d}": value for i in range(schema["maxProperties"])}
    if "enum" in schema:
        return max(schema["enum"], key=len)
    if kind == "string" or schema.get("x-kubernetes-int-or-string"):
        return "x" * schema["maxLength"]
    scalars: dict[str, Any] = {"integer": 1 << 62, "number": 1e300, "boolean": True}
    return scalars[str(kind)]


def small(selector: dict[str, Any]) -> None:
    """What the CEL rule on pins and the canary selector allows."""
    labels, expressions, values = SMALL_SELECTOR_LIMITS
    selector["matchLabels"] = dict(list(selector["matchLabels"].items())[:labels])
    selector["matchExpressions"] = selector["matchExpressions"][:expressions]
    for expression in selector["matchExpressions"]:
        expression["values"] = expression["values"][:values]


def largest_spec() -> dict[str, Any]:
    crd = render_crds()[0]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec: dict[str, Any] = largest(schema)
    for pin in spec["selection"]["pins"]:
        small(pin["nodeSelector"])
    small(spec["strategy"]["canarySelector"])
    return spec


def test_every_string_list_and_map_in_the_spec_is_bounded() -> None:
    largest_spec()  # a KeyError names a field without maxLength, maxItems or maxProperties


def test_the_largest_spec_leaves_room_for_kopf_state_and_the_users_annotations() -> None:
    size = len(json.dumps(largest_spec(), separators=(",", ":")))
    assert size < 184 * KIB, f"{size / KIB:.0f} KiB"
    kopf_state = 4 * KIB  # the spec's digest and progress per handler
    users = 64 * KIB
    assert size + kopf_state + users < ANNOTATIONS_LIMIT  # kubectl apply's copy of the spec
