"""Model objects for the plugin's rendering tests: a deployment mid-rollout and a small fleet."""

from __future__ import annotations

from typing import Any

from edge_rollout.api.edgenode import DesiredModel, EdgeNode
from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.cli.explaining import Fleet
from edge_rollout.core import inputs
from edge_rollout.core.conditions import rfc3339
from tests.unit.core.fixtures import GIB, MIB, T0, hardware

STEPS = [{"setNodeCount": 1}, {"pause": {}}, {"setNodePercent": 100}]


def deployment(
    step: int = 1, name: str = "md", labels: dict[str, str] | None = None, **status: Any
) -> ModelDeployment:
    """`ns/md` rolling out 2.0 over 1.0, waiting at the pause (step 1) by default."""
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name, "namespace": "ns", "generation": 3},
            "spec": {
                "model": {"name": "m", "version": "2.0", "store": {"url": "http://s.example/s"}},
                "nodeSelector": {"matchLabels": labels or {"edge": "true"}},
                "strategy": {"steps": STEPS},
            },
            "status": {
                "phase": "Progressing",
                "targetVersion": "2.0",
                "stableVersion": "1.0",
                "currentStepIndex": step,
                "counts": {"targeted": 6, "applied": 2, "succeeded": 1, "failed": 1, "pending": 4},
                "variants": [{"variant": "fp16", "nodes": 1}, {"variant": "int8-npu", "nodes": 1}],
                "bytesFetched": 3 * MIB,
                "bytesReused": 9 * MIB,
                "worstNodes": [
                    {
                        "node": "edge-3",
                        "phase": "Failed",
                        "reason": "TestVectorMismatch",
                        "message": "output 0 differs from the golden vector",
                    }
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "RolloutInProgress",
                        "message": "1/6 nodes on 2.0",
                        "lastTransitionTime": rfc3339(T0),
                    }
                ],
                "message": "1/6 nodes on 2.0, 1 failed; step 1/3 (pause until approved)",
                **status,
            },
        }
    )


def entry(version: str, variant: str, name: str = "ns/md", **fields: Any) -> DesiredModel:
    return DesiredModel.model_validate(
        {
            "name": name,
            "model": "m",
            "version": version,
            "variant": variant,
            "storeUrl": "http://s.example/s",
            **fields,
        }
    )


def edgenode(name: str, kind: str, memory: int = 4 * GIB, **fields: Any) -> EdgeNode:
    """An EdgeNode whose agent reported `kind` hardware at T0."""
    desired = fields.pop("desired", [])
    models = fields.pop("models", [])
    hw = hardware(kind, memory).model_copy(update=fields)
    return EdgeNode.model_validate(
        {
            "metadata": {"name": name, "labels": {"edge": "true"}},
            "spec": {"models": [d.model_dump(by_alias=True) for d in desired]},
            "status": {
                "hardware": hw.model_dump(by_alias=True),
                "heartbeatTime": rfc3339(T0),
                "models": models,
            },
        }
    )


def fleet(*edgenodes: EdgeNode, labels_only: dict[str, dict[str, str]] | None = None) -> Fleet:
    """EdgeNodes with agents (Node labels edge=true), plus Nodes known only by their labels."""
    nodes = {str(e.metadata["name"]): inputs.NodeInfo({"edge": "true"}, 0) for e in edgenodes}
    for name, labels in (labels_only or {}).items():
        nodes[name] = inputs.NodeInfo(labels, 8 * GIB)
    return Fleet(nodes, {str(e.metadata["name"]): e for e in edgenodes})
