"""The README's demo runs from start to finish and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import REPO


def control_plane_processes(workdir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if str(workdir) in line]


def test_demo_shows_the_modeldeployment_status_and_cleans_up(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "demo.py"), "--no-wait", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "modeldeployment.edgerollout.dev/magika created" in out
    status_line = next(line for line in out.splitlines() if line.startswith("default"))
    assert status_line.split()[1:6] == ["magika", "magika", "1.0.0", "Pending", "False"]
    assert "should be less than or equal to 100" in out
    assert "nothing left running" in out
    assert control_plane_processes(workdir) == []
