"""Spec warnings the apiserver cannot give: a spec that is valid but will not do what it says.

Pure: from the deployment, its selected nodes (in the order they are asked) and `now`, a
`Warning` condition on the status and a Warning event for each new warning. Checked: a canary
selector that matches none of the selected nodes, pins that repeat or contradict an earlier pin
(the first matching pin wins, so the later one never applies), and another deployment of the same
model on the same nodes (two copies on each). Must not change what is planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter

from edge_rollout.api.modeldeployment import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    VariantPin,
)
from edge_rollout.core import labels as node_labels
from edge_rollout.core.conditions import set_condition
from edge_rollout.core.values import Deployment, Event, NodeInput

_SAME_MODEL = attrgetter("same_model")
WARNING = "Warning"
"""Condition type: True while the spec has warnings; absent otherwise."""


@dataclass(frozen=True)
class SpecWarning:
    """One thing to change in the spec: a CamelCase reason and a sentence."""

    reason: str
    message: str


def with_warnings(
    deployment: Deployment,
    selected: Sequence[NodeInput],
    status: ModelDeploymentStatus,
    now: datetime,
) -> tuple[ModelDeploymentStatus, tuple[Event, ...]]:
    """`status` with the Warning condition set (or removed), and an event per new warning."""
    found = spec_warnings(deployment.key, deployment.spec, selected)
    previous = next((c for c in status.conditions if c.type == WARNING), None)
    if not found:
        if previous is None:
            return status, ()
        kept = [c for c in status.conditions if c.type != WARNING]
        return status.model_copy(update={"conditions": kept}), ()
    message = " ".join(w.message for w in found)[:32768]
    conditions = set_condition(
        status.conditions,
        type_=WARNING,
        status="True",
        reason=found[0].reason,
        message=message,
        generation=deployment.generation,
        now=now,
    )
    said = previous.message if previous is not None else ""
    events = tuple(Event("Warning", w.reason, w.message) for w in found if w.message not in said)
    return status.model_copy(update={"conditions": conditions}), events


def spec_warnings(
    key: str, spec: ModelDeploymentSpec, selected: Sequence[NodeInput]
) -> list[SpecWarning]:
    """Every warning for the deployment `key`, pins first.

    >>> from edge_rollout.api.modeldeployment import ModelDeploymentSpec
    >>> spec = ModelDeploymentSpec.model_validate({
    ...     "model": {"name": "m", "version": "1", "store": {"url": "file:///s"}},
    ...     "selection": {"pins": [{"nodeSelector": {}, "variant": "fp32"},
    ...                            {"nodeSelector": {}, "variant": "fp32"}]}})
    >>> [w.reason for w in spec_warnings("ns/d", spec, [])]
    ['DuplicatePin']
    """
    return [*pin_warnings(spec), *_canary(spec, selected), *_same_model(key, spec, selected)]


def pin_warnings(spec: ModelDeploymentSpec) -> list[SpecWarning]:
    """Pins that can never apply: an earlier pin selects the same nodes (or every node)."""
    pins = spec.selection.pins
    keys = [node_labels.selector_key(p.node_selector) for p in pins]
    found = []
    for j, pin in enumerate(pins):
        i = next((i for i in range(j) if keys[i] == keys[j] or _everything(pins[i])), None)
        if i is None:
            continue
        earlier = pins[i]
        if keys[i] == keys[j] and earlier.variant == pin.variant:
            message = (
                f"spec.selection.pins[{j}] repeats pins[{i}] (same nodeSelector, variant"
                f" {pin.variant}): remove pins[{j}]."
            )
            found.append(SpecWarning("DuplicatePin", message))
            continue
        which = "every node" if _everything(earlier) else "the same nodes"
        message = (
            f"spec.selection.pins[{j}] (variant {pin.variant}) never applies: pins[{i}]"
            f" (variant {earlier.variant}) selects {which} and the first matching pin wins:"
            f" remove one of them or narrow pins[{i}].nodeSelector."
        )
        found.append(SpecWarning("ContradictoryPin", message))
    return found


def _everything(pin: VariantPin) -> bool:
    selector = pin.node_selector
    return not selector.match_labels and not selector.match_expressions


def _canary(spec: ModelDeploymentSpec, selected: Sequence[NodeInput]) -> list[SpecWarning]:
    """Canary-labelled nodes are asked first, so if the first selected node is not one, none
    is."""
    canary = spec.strategy.canary_selector
    if canary is None or not selected:
        return []
    if node_labels.selector_matches(canary, selected[0].labels):
        return []
    return [
        SpecWarning(
            "CanaryMatchesNoNode",
            f"spec.strategy.canarySelector matches no selected node ({len(selected)} selected),"
            " so no canary goes first: label the canary nodes (kubectl label node NAME"
            " ring=canary) or fix the selector.",
        )
    ]


def _same_model(
    key: str, spec: ModelDeploymentSpec, selected: Sequence[NodeInput]
) -> list[SpecWarning]:
    if not any(map(_SAME_MODEL, selected)):  # in C: the usual case costs little at 10,000 nodes
        return []
    nodes: dict[str, list[str]] = {}
    for node in selected:
        for other in node.same_model:
            nodes.setdefault(other, []).append(node.name)
    return [
        SpecWarning(
            "SameModelOnNode",
            f"model {spec.model.name} is also deployed by {other} on {len(names)} of these"
            f" nodes (e.g. {min(names)}), which then hold two copies: deploy it once (narrow"
            f" one nodeSelector so they do not overlap) or delete one of the two.",
        )
        for other, names in sorted(nodes.items())
    ]
