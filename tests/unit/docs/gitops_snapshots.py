"""ModelDeployment objects as the planner writes them in every phase, for the GitOps health checks.

Each snapshot is a whole object (metadata.generation, spec, status) taken from a simulated
rollout driven by the real planner (tests/unit/core/fixtures.Fleet) with the health Argo CD should
show. `python -m tests.unit.docs.gitops_snapshots` writes tests/fixtures/gitops/snapshots.json;
the tests check that file against the planner of today.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from edge_rollout.api.modeldeployment import Abort, AbortCriterion, Approval
from edge_rollout.core import status as status_core
from tests.support import REPO
from tests.unit.core.fixtures import MIB, Fleet, fleet, hardware

FIXTURE = REPO / "tests" / "fixtures" / "gitops" / "snapshots.json"
BROKEN = frozenset(f"2.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu"))


def installed(count: int, **strategy: object) -> Fleet:
    f = fleet(count)
    f.apply(f.plan())
    f.run()
    merged = {**f.spec.strategy.model_dump(by_alias=True, exclude_none=True), **strategy}
    f.spec = f.spec.model_copy(update={"strategy": type(f.spec.strategy).model_validate(merged)})
    f.change_version("2.0")
    f.apply(f.plan())
    return f


def progressing() -> Fleet:
    f = installed(6)
    f.tick()
    return f


def paused_at_step() -> Fleet:
    f = installed(6, steps=[{"setNodeCount": 2}, {"pause": {}}])
    f.run(ticks=30)
    return f


def paused_by_spec() -> Fleet:
    f = installed(6)
    f.spec = f.spec.model_copy(update={"paused": True})
    f.apply(f.plan())
    return f


def ready() -> Fleet:
    f = installed(4, steps=[{"setNodeCount": 1}, {"pause": {}}])
    f.run(ticks=20)
    approved = Approval(version="2.0", through_step=1)
    f.spec = f.spec.model_copy(
        update={"strategy": f.spec.strategy.model_copy(update={"approved": approved})}
    )
    f.run()
    return f


def no_fitting_variant() -> Fleet:
    f = fleet(3)
    for node in f.nodes:
        node.hardware = hardware("cpu", memory=32 * MIB)
    f.apply(f.plan())
    f.run(ticks=5)
    return f


def one_node_too_small() -> Fleet:
    f = fleet(3)
    f.nodes[0].hardware = hardware("cpu", memory=32 * MIB)
    f.apply(f.plan())
    f.run()
    return f


def nodes_failed() -> Fleet:
    f = installed(4)
    f.spec = f.spec.model_copy(update={"abort": Abort()})
    f.nodes[3].broken = BROKEN
    f.apply(f.plan())
    f.run()
    return f


def failing_while_rolling() -> Fleet:
    f = installed(6)
    lenient = Abort(
        criteria=[AbortCriterion(threshold_percentage=90, min_number_of_executed_nodes=5)]
    )
    f.spec = f.spec.model_copy(update={"abort": lenient})
    f.nodes[0].broken = BROKEN
    for _ in range(200):
        f.tick()
        if f.status.counts.failed:
            break
    return f


def rolled_back() -> Fleet:
    f = installed(4)
    for node in f.nodes:
        node.broken = BROKEN
    f.run()
    return f


def failed_first_install() -> Fleet:
    f = fleet(2)
    f.spec = f.spec.model_copy(update={"abort": Abort()})
    for node in f.nodes:
        node.broken = frozenset(f"1.0/{v}" for v in ("fp32", "fp16", "int8", "int8-npu"))
    f.apply(f.plan())
    f.run()
    return f


def release_missing() -> Fleet:
    f = ready()
    f.change_version("9.9")
    f.status = status_core.stalled_status(
        f.status,
        generation=f.generation,
        reason="ReleaseNotFound",
        message="release m@9.9 not found in the store: publish it or fix spec.model.version",
        now=f.now,
    )
    return f


SCENARIOS: dict[str, tuple[Callable[[], Fleet], str]] = {
    "progressing": (progressing, "Progressing"),
    "paused-at-step": (paused_at_step, "Suspended"),
    "paused-by-spec": (paused_by_spec, "Suspended"),
    "ready": (ready, "Healthy"),
    "no-fitting-variant": (no_fitting_variant, "Degraded"),
    "one-node-too-small": (one_node_too_small, "Degraded"),
    "nodes-failed": (nodes_failed, "Degraded"),
    "failing-while-rolling": (failing_while_rolling, "Progressing"),
    "rolled-back": (rolled_back, "Degraded"),
    "failed-first-install": (failed_first_install, "Degraded"),
    "release-missing": (release_missing, "Degraded"),
}


def as_object(f: Fleet) -> dict[str, Any]:
    return {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "md", "namespace": "ns", "generation": f.generation},
        "spec": f.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "status": f.status.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def snapshots() -> dict[str, dict[str, Any]]:
    """Every scenario's object and expected health, from the planner of today."""
    return {
        name: {"health": health, "object": as_object(build())}
        for name, (build, health) in SCENARIOS.items()
    }


def render() -> str:
    return json.dumps(snapshots(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(render())
    print(f"wrote {FIXTURE.relative_to(REPO)}")
