"""The README's demo runs from start to finish, tells the whole story, and leaves nothing behind.

Real parts throughout: kube-apiserver + etcd, nginx, the operator, six agents running onnxruntime
on magika's real classifier; only the NPU/GPU hardware is a profile file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    workdir = tmp_path_factory.mktemp("demo") / "run"
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "demo.py"), "--no-wait", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout, workdir


def rows(out: str, header: str) -> list[list[str]]:
    """The rows of the first table after `header`."""
    lines = out.split(header, 1)[1].splitlines()
    table = next(i for i, line in enumerate(lines) if line.strip().startswith("NODE"))
    found = []
    for line in lines[table + 1 :]:
        if not line.strip().startswith("edge-"):
            break
        found.append(line.split())
    return found


def test_each_node_runs_the_variant_its_hardware_gets(demo: tuple[str, Path]) -> None:
    out, _ = demo
    variants = {row[0]: row[2] for row in rows(out, "Which node got which variant")}
    assert len(variants) == 6
    assert variants["edge-gpu-1"] == variants["edge-gpu-2"] == "fp16"
    assert {variants[n] for n in ("edge-cpu-1", "edge-cpu-2", "edge-npu-1")} == {"int8"}


def test_the_update_fetches_only_changed_bytes(demo: tuple[str, Path]) -> None:
    out, _ = demo
    match = re.search(r"fleet fetched ([\d,]+) bytes of ([\d,]+) \(([\d.]+)%\)", out)
    assert match, out
    assert float(match.group(3)) < 10.0
    updated = rows(out, "Rolling out 1.1.0")
    assert all(row[3] == "1.1.0" for row in updated)


def test_the_broken_release_is_stopped_and_rolled_back(demo: tuple[str, Path]) -> None:
    out, _ = demo
    assert "phase RolledBack" in out
    assert "TestVectorMismatch" in out
    after = rows(out, "Warning events on the ModelDeployment")
    assert [row[3] for row in after] == ["1.1.0"] * 6


def test_nothing_is_left_running(demo: tuple[str, Path]) -> None:
    out, workdir = demo
    assert "nothing left running" in out
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert [line for line in ps.stdout.splitlines() if str(workdir) in line] == []
