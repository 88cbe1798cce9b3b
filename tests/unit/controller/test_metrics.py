"""The operator's per-deployment series: totals apart from their parts, one info labelset per
deployment, and nothing left once the deployment is deleted."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from edge_rollout.api.modeldeployment import ModelDeploymentStatus, PhaseCounts
from edge_rollout.controller import metrics


def _series(name: str) -> list[str]:
    text = generate_latest(REGISTRY).decode()
    return [
        line for line in text.splitlines() if line.startswith(name + "{") and 'name="um"' in line
    ]


def _status(phase: str, version: str, step: int) -> ModelDeploymentStatus:
    counts = PhaseCounts(targeted=5, applied=4, succeeded=2, failed=1, pending=2)
    return ModelDeploymentStatus.model_validate(
        {"phase": phase, "targetVersion": version, "currentStepIndex": step,
         "counts": counts.model_dump(by_alias=True)}
    )  # fmt: skip


def test_counts_by_phase_sum_to_the_separate_total() -> None:
    metrics.record_deployment("ns", "um", _status("Progressing", "2.0", 1))
    parts = _series("edge_rollout_deployment_nodes")
    assert sorted(line.split("phase=")[1] for line in parts) == [
        '"failed"} 1.0', '"pending"} 2.0', '"succeeded"} 2.0'
    ]  # fmt: skip
    assert _series("edge_rollout_deployment_nodes_targeted") == [
        'edge_rollout_deployment_nodes_targeted{name="um",namespace="ns"} 5.0'
    ]
    metrics.forget_deployment("ns", "um")


def test_the_info_series_follows_phase_version_and_step() -> None:
    metrics.record_deployment("ns", "um", _status("Progressing", "2.0", 1))
    metrics.record_deployment("ns", "um", _status("Ready", "2.0", 3))
    assert _series("edge_rollout_modeldeployment_info") == [
        'edge_rollout_modeldeployment_info{name="um",namespace="ns",phase="Ready",step="3",'
        'version="2.0"} 1.0'
    ]
    metrics.forget_deployment("ns", "um")


def test_a_deleted_deployment_leaves_no_series() -> None:
    metrics.record_deployment("ns", "um", _status("Degraded", "2.0", 0))
    metrics.forget_deployment("ns", "um")
    metrics.forget_deployment("ns", "um")  # a retried delete handler
    text = generate_latest(REGISTRY).decode()
    assert 'name="um"' not in text
