"""A short seeded run of bench/chaos/moments.py (the full one: `bench/chaos/run.py --random`):
faults of issue 14 at moments drawn from a fixed seed on three real agents, the operator as a
process and the real apiserver; healed, every node must serve (sha256 from disk) what its
EdgeNode status and the ModelDeployment status say. The same seed must replay the same schedule.
About a minute on a quiet machine (most of it publishing the two releases).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import moments, schedule
from edge_rollout.testing.controlplane import ControlPlane

SEED = 2352
"""Six faults: abort, active-flip, disk-full, kept-rot-rollback, relabel and store-short, with
rollouts between them (without root for the small disk, another six of the same seed)."""
FAULTS = 6


@pytest.mark.usefixtures("crds_installed")
def test_random_faults_leave_every_node_serving_what_status_says(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    settings = moments.Settings(SEED, FAULTS, timeout=60, settle=60, per_checkpoint=FAULTS,
                                versions=("1.0", "2.0"))  # fmt: skip
    report = moments.run_on(control_plane, namespace, tmp_path, settings)
    summary = report.summary(f"seed {SEED}")
    kinds, _ = moments.kinds_here()
    events = schedule.make_schedule(SEED, FAULTS, 3, 2, kinds, per_checkpoint=FAULTS)
    assert report.fingerprint == schedule.fingerprint(events), summary
    assert report.faults == FAULTS, summary
    assert report.checkpoints == 1, summary
    assert report.inconsistent == [], summary
    assert not report.cut_short, summary
