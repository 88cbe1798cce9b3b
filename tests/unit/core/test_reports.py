"""Agents' reports as untrusted input: an unusable report holds its node alone (ReportInvalid),
and nothing in one node's status changes another node's plan or makes planning raise."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.core import inputs, planning, reports
from edge_rollout.core.conditions import rfc3339
from tests.unit.core.fixtures import GIB, T0, hardware, release, spec

KEY = "ns/d"
NODES = ("a", "b", "c")
AN_HOUR_AGO = rfc3339(T0 - timedelta(hours=1))


def entry() -> dict[str, Any]:
    return {
        "name": KEY,
        "model": "m",
        "version": "1.0",
        "variant": "fp32",
        "storeUrl": "http://127.0.0.1:1/s",
        "requestedAt": AN_HOUR_AGO,
    }


def good_status() -> dict[str, Any]:
    return {
        "hardware": hardware("cpu").model_dump(mode="json", by_alias=True, exclude_none=True),
        "heartbeatTime": rfc3339(T0),
        "models": [
            {
                "name": KEY,
                "phase": "Ready",
                "version": "1.0",
                "variant": "fp32",
                "activeVersion": "1.0",
                "activeVariant": "fp32",
                "bytesFetched": 10,
                "lastTransitionTime": AN_HOUR_AGO,
                "readySince": AN_HOUR_AGO,
            }
        ],
    }


def body(name: str, status: object) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"edge": "true"}},
        "spec": {"models": [entry()]},
        "status": status,
    }


def plan(statuses: dict[str, object]) -> planning.Plan:
    """Plan the deployment `ns/d` (1.0, Ready everywhere) over nodes a, b, c."""
    edgenodes = {n: reports.read_edgenode(body(n, statuses[n]), T0) for n in NODES}
    nodes = {n: inputs.NodeInfo({"edge": "true"}, 4 * GIB) for n in NODES}
    md = spec("1.0", maxUnavailable="100%")
    status = ModelDeploymentStatus(stable_version="1.0", target_version="1.0")
    deployment = planning.Deployment(KEY, 1, md, status)
    found = inputs.node_inputs(KEY, 0, False, nodes, edgenodes, md.node_selector)
    return planning.plan_rollout(deployment, {"1.0": release("1.0")}, found, T0)


def with_model(**fields: object) -> dict[str, Any]:
    status = good_status()
    status["models"][0].update(fields)
    return status


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        pytest.param(
            with_model(readySince="yesterday"),
            "status.models[0].readySince: must be an RFC 3339 time with a zone, like"
            ' 2026-03-06T23:00:00Z (or empty); got "yesterday"',
            id="words",
        ),
        pytest.param(
            with_model(readySince="2026-10-31T23:00:00"),
            "status.models[0].readySince: must be an RFC 3339 time with a zone, like"
            ' 2026-03-06T23:00:00Z (or empty); got "2026-10-31T23:00:00"',
            id="no-zone",
        ),
        pytest.param(
            with_model(readySince="2026-11-01T02:00:00Z"),
            "status.models[0].readySince: 2026-11-01T02:00:00Z is 2 hours after the operator"
            " received the report: set the node's clock (NTP)",
            id="future",
        ),
        pytest.param(
            with_model(readySince="2026-13-45T00:00:00Z"),
            'status.models[0].readySince: "2026-13-45T00:00:00Z" is not a valid RFC 3339 time'
            " (like 2026-03-06T23:00:00Z)",
            id="month-13",
        ),
        pytest.param(
            with_model(bytesFetched=1 << 70),
            "status.models[0].bytesFetched: Input should be less than or equal to 4398046511104;"
            " got 1180591620717411303424",
            id="bytes-beyond-int64",
        ),
        pytest.param(
            {**good_status(), "heartbeatTime": 5},
            "status.heartbeatTime: Input should be a valid string; got 5",
            id="heartbeat-number",
        ),
        pytest.param(
            {
                **good_status(),
                "hardware": {**good_status()["hardware"], "timeZone": "Mars/Olympus"},
            },
            'status.hardware.timeZone: "Mars/Olympus" is not an IANA time zone (like'
            " Europe/Berlin): fix the node's zone or its hardware profile",
            id="zone",
        ),
        pytest.param(
            "garbage",
            "status: Input should be a valid dictionary or instance of EdgeNodeStatus; got"
            " 'garbage'",
            id="not-an-object",
        ),
    ],
)
def test_an_unusable_report_holds_its_node_alone_and_says_which_field(
    status: object, problem: str
) -> None:
    result = plan({"a": status, "b": good_status(), "c": good_status()})
    worst = {n.node: n for n in result.status.worst_nodes}
    assert list(worst) == ["a"]
    assert worst["a"].reason == "ReportInvalid"
    assert worst["a"].message == f"{problem}; {reports.HELD}"[:1024]
    held = result.desired["a"]
    assert held is not None
    assert held.version == "1.0"
    assert result.status.counts.succeeded == 2
    assert ("Warning", "NodeUnschedulable") in {(e.type, e.reason) for e in result.events}


def test_a_usable_report_is_kept_as_it_is() -> None:
    read = reports.read_edgenode(body("a", good_status()), T0)
    assert reports.report_problem(read) is None
    assert read.status.models[0].bytes_fetched == 10


def test_the_entry_of_a_held_node_is_not_touched() -> None:
    baseline = plan({n: good_status() for n in NODES})
    held = plan({"a": with_model(readySince="x"), "b": good_status(), "c": good_status()})
    assert held.desired["a"] == baseline.desired["a"]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 80), max_value=1 << 80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["", "Ready", "Failed", "2026-11-01T00:00:00Z", "2026-11-01T00:00:00"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from([*good_status(), *good_status()["models"][0], "class", "x"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=20,
)


def mutated(data: st.DataObject) -> object:
    """A valid status with one value somewhere replaced by arbitrary JSON."""
    status: Any = copy.deepcopy(good_status())
    parent, key = status, data.draw(st.sampled_from(sorted(status)))
    while isinstance(parent[key], dict | list) and parent[key] and data.draw(st.booleans()):
        parent = parent[key]
        keys = list(range(len(parent))) if isinstance(parent, list) else sorted(parent)
        key = data.draw(st.sampled_from(keys))
    parent[key] = data.draw(JSON)
    return status


BASELINE = plan({"a": {}, "b": good_status(), "c": good_status()})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_json_in_one_status_never_changes_another_nodes_plan_nor_raises(
    data: st.DataObject,
) -> None:
    status = mutated(data) if data.draw(st.booleans()) else data.draw(JSON)
    result = plan({"a": status, "b": good_status(), "c": good_status()})
    for node in ("b", "c"):
        assert result.desired[node] == BASELINE.desired[node]
        assert result.choices[node] == BASELINE.choices[node]
    assert [n.node for n in result.status.worst_nodes if n.node != "a"] == []
