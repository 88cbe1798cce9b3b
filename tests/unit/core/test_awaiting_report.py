"""No variant for a node whose hardware the operator does not know (issue 14.2).

An EdgeNode created again without status (deleted while its agent runs, or never reported) leaves
the operator only the Node's labels: it must not choose a variant from them (a GPU node without
GPU labels would be asked for fp32), but wait for the agent's report, and say so per node.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edge_rollout.api.edgenode import EdgeNode, EdgeNodeStatus
from edge_rollout.api.modeldeployment import ModelDeploymentStatus
from edge_rollout.core import inputs, planning
from tests.unit.core.fixtures import GIB, hardware, release, spec

NOW = datetime(2026, 3, 6, 12, tzinfo=UTC)
KEY = "ns/m"
GPU_LABELS = {"edge": "true", "nvidia.com/gpu.present": "true"}


def reported(kind: str) -> EdgeNode:
    status = EdgeNodeStatus(hardware=hardware(kind), heartbeat_time="2026-03-06T11:59:00Z")
    return EdgeNode(metadata={"name": kind}, status=status)


def plan(edgenodes: dict[str, EdgeNode], labels: dict[str, str]) -> planning.Plan:
    md = spec("2.0")
    nodes = {name: inputs.NodeInfo(labels, 8 * GIB) for name in ("reported", "unreported")}
    fleet = inputs.node_inputs(KEY, 0, False, nodes, edgenodes, md.node_selector)
    deployment = planning.Deployment(KEY, 1, md, ModelDeploymentStatus())
    return planning.plan_rollout(deployment, {"2.0": release("2.0")}, fleet, NOW)


@pytest.mark.parametrize(
    "unreported",
    [
        pytest.param(None, id="no-edgenode"),
        pytest.param(EdgeNode(metadata={"name": "unreported"}), id="edgenode-without-status"),
    ],
)
@pytest.mark.parametrize(
    "labels",
    [pytest.param({"edge": "true"}, id="plain"), pytest.param(GPU_LABELS, id="gpu-labels")],
)
def test_a_node_without_a_hardware_report_gets_no_variant_and_says_why(
    unreported: EdgeNode | None, labels: dict[str, str]
) -> None:
    edgenodes = {"reported": reported("gpu")}
    if unreported is not None:
        edgenodes["unreported"] = unreported
    result = plan(edgenodes, labels)
    entry = result.desired["reported"]
    assert entry is not None
    assert entry.variant == "fp16"
    assert result.desired.get("unreported") is None
    (worst,) = result.status.worst_nodes
    assert (worst.node, worst.reason) == ("unreported", "AwaitingHardwareReport")
    assert "waiting for its agent's hardware report" in worst.message


def test_once_the_agent_reports_the_node_gets_the_variant_of_its_hardware() -> None:
    edgenodes = {"reported": reported("gpu"), "unreported": reported("gpu")}
    result = plan(edgenodes, {"edge": "true"})
    variants = {n: e.variant for n, e in result.desired.items() if e is not None}
    assert variants == {"reported": "fp16", "unreported": "fp16"}
    assert result.status.worst_nodes == []
