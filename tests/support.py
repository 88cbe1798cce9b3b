"""Helpers shared by the test tiers (kept out of conftest.py so tests can import them)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from kopf.testing import KopfRunner

from edge_rollout.testing.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[1]


class Kubectl:
    """The real kubectl against the test control plane."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.plane.kubectl), f"--kubeconfig={self.plane.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result


@contextlib.contextmanager
def kopf_operator(args: list[str], timeout: float = 120.0) -> Iterator[KopfRunner]:
    """`kopf.testing.KopfRunner` with our defaults (the sockets Kopf leaves to the garbage
    collector are tolerated by the ResourceWarning filter in pyproject.toml)."""
    with KopfRunner(args, timeout=timeout) as runner:
        yield runner
