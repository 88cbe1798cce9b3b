"""Specs that are valid but will not do what they say: warnings (pins, canary, the same model
twice on a node), the IANA time zone and maxUnavailable refusals, memory 0 meaning 0."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edge_rollout.api.edgenode import Hardware
from edge_rollout.api.modeldeployment import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    SelectionPolicy,
    Strategy,
    Window,
)
from edge_rollout.core import planning, selection, specchecks
from tests.unit.core.fixtures import T0, hardware, release


def spec(**fields: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "model": {"name": "m", "version": "1.0", "store": {"url": "file:///s"}},
        **fields,
    }
    return ModelDeploymentSpec.model_validate(body)


def pins(*pairs: tuple[dict[str, str], str]) -> ModelDeploymentSpec:
    return spec(
        selection={"pins": [{"nodeSelector": {"matchLabels": s}, "variant": v} for s, v in pairs]}
    )


def node(name: str, same_model: tuple[str, ...] = (), **labels: str) -> planning.NodeInput:
    return planning.NodeInput(name, labels, hardware("cpu"), same_model=same_model)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            pins(({"rack": "lab"}, "fp32"), ({"rack": "lab"}, "fp32")),
            [("DuplicatePin", "spec.selection.pins[1] repeats pins[0] (same nodeSelector,"
              " variant fp32): remove pins[1].")],
            id="duplicate",
        ),
        pytest.param(
            pins(({"rack": "lab"}, "fp32"), ({"rack": "lab"}, "int8")),
            [("ContradictoryPin", "spec.selection.pins[1] (variant int8) never applies:"
              " pins[0] (variant fp32) selects the same nodes and the first matching pin wins:"
              " remove one of them or narrow pins[0].nodeSelector.")],
            id="contradictory",
        ),
        pytest.param(
            pins(({}, "fp32"), ({"rack": "lab"}, "int8")),
            [("ContradictoryPin", "spec.selection.pins[1] (variant int8) never applies:"
              " pins[0] (variant fp32) selects every node and the first matching pin wins:"
              " remove one of them or narrow pins[0].nodeSelector.")],
            id="shadowed-by-a-pin-on-every-node",
        ),
        pytest.param(
            pins(({"rack": "lab"}, "fp32"), ({"rack": "edge"}, "int8")), [], id="distinct"
        ),
    ],
)  # fmt: skip
def test_pins_that_never_apply_are_named(
    given: ModelDeploymentSpec, expected: list[tuple[str, str]]
) -> None:
    found = specchecks.spec_warnings("ns/d", given, [])
    assert [(w.reason, w.message) for w in found] == expected


def test_a_canary_selector_matching_no_selected_node_is_a_warning() -> None:
    given = spec(strategy={"canarySelector": {"matchLabels": {"ring": "canary"}}})
    nodes = [node("a"), node("b")]
    [warning] = specchecks.spec_warnings("ns/d", given, nodes)
    assert warning.reason == "CanaryMatchesNoNode"
    assert warning.message.startswith(
        "spec.strategy.canarySelector matches no selected node (2 selected)"
    )
    assert specchecks.spec_warnings("ns/d", given, [node("a", ring="canary"), node("b")]) == []


def test_the_same_model_deployed_twice_on_a_node_is_a_warning() -> None:
    nodes = [node("a", ("ns/other",)), node("b", ("ns/other",)), node("c")]
    [warning] = specchecks.spec_warnings("ns/d", spec(), nodes)
    assert warning.reason == "SameModelOnNode"
    assert warning.message == (
        "model m is also deployed by ns/other on 2 of these nodes (e.g. a), which then hold two"
        " copies: deploy it once (narrow one nodeSelector so they do not overlap) or delete one"
        " of the two."
    )


def test_the_warning_condition_and_its_event_come_once_and_go_when_fixed() -> None:
    given = pins(({"rack": "lab"}, "fp32"), ({"rack": "lab"}, "fp32"))
    deployment = planning.Deployment("ns/d", 3, given, ModelDeploymentStatus())
    status, events = specchecks.with_warnings(deployment, [], ModelDeploymentStatus(), T0)
    [condition] = status.conditions
    assert (condition.type, condition.status, condition.reason) == (
        "Warning",
        "True",
        "DuplicatePin",
    )
    assert [e.reason for e in events] == ["DuplicatePin"]
    again, events = specchecks.with_warnings(deployment, [], status, T0)
    assert (again, events) == (status, ())
    fixed = planning.Deployment("ns/d", 4, spec(), status)
    cleared, events = specchecks.with_warnings(fixed, [], status, T0)
    assert (cleared.conditions, events) == ([], ())


@pytest.mark.parametrize("zone", ["Mars/Olympus", "UTC+2", "Europe/Berlln"])
def test_a_window_time_zone_outside_the_iana_database_is_refused_naming_the_field(
    zone: str,
) -> None:
    window = {"startTime": "01:00", "endTime": "02:00", "timeZone": zone}
    with pytest.raises(ValidationError) as info:
        spec(updatePolicy={"window": window})
    error = info.value.errors()[0]
    assert error["loc"] == ("updatePolicy", "window", "timeZone")
    assert error["msg"] == (
        f'"{zone}" is not an IANA time zone: use a name like Europe/Berlin or UTC (an offset is'
        " not a zone: for UTC+2 write Etc/GMT-2), or leave it empty for the node's zone"
    )
    assert Window(start_time="01:00", end_time="02:00", time_zone="Europe/Berlin")


@pytest.mark.parametrize("value", [0, "0%", "00%"])
def test_max_unavailable_zero_is_refused_with_what_to_use(value: int | str) -> None:
    with pytest.raises(ValidationError, match="maxUnavailable 0 would never let a node update"):
        Strategy(max_unavailable=value)
    assert Strategy(max_unavailable=1).max_unavailable == 1
    assert Strategy(max_unavailable="1%").max_unavailable == "1%"


def test_a_pin_selector_is_small() -> None:
    labels = {f"k{i}": "v" for i in range(5)}
    with pytest.raises(ValidationError, match="a pin's nodeSelector may have at most 4"):
        pins((labels, "fp32"))


def test_memory_zero_means_zero_and_is_reported() -> None:
    node_facts = selection.NodeFacts(
        "n", {}, hardware("cpu").model_copy(update={"memory_bytes": 0})
    )
    policy = SelectionPolicy()
    budget = selection.memory_budget(node_facts.hardware, policy, [])
    assert budget == 0
    choice = selection.select_variant(node_facts, release("1.0"), policy, budget, ())
    assert choice.variant is None
    fits = [r for r in choice.rejections if r.reason == "DoesNotFit"]
    assert fits, choice.rejections
    assert all(
        "the node reports 0 bytes of memory (hardware.memoryBytes)" in r.message for r in fits
    )
    assert selection.memory_budget(Hardware(), policy, []) is None  # absent: unknown
