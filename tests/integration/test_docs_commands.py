"""Every shell block in the README and docs/ works as written, or says why it cannot run here.

Blocks run in order, one bash per file (so later blocks see what earlier ones did), against a fresh
control plane per file, with the cached binaries and the venv on PATH. A block preceded by
`<!-- doc-test: skip: REASON -->` is not run; the reason must be given.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_rollout.store import keys
from edge_rollout.testing.controlplane import ControlPlane
from tests.support import REPO

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\w*)\s*$")
MARKER = re.compile(r"<!--\s*doc-test:\s*skip:\s*(?P<reason>.*?)\s*-->")
SHELLS = ("sh", "bash", "shell")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
IN_REPO = {"README.md"}
"""Files whose blocks run in the repository itself (make targets); the rest in a scratch dir."""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str
    skip: str | None


def blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match or match["lang"] not in SHELLS:
            i += 1
            continue
        marker = MARKER.search(lines[i - 1]) if i else None
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in lines[i + 1 : end])
        yield Block(path, i + 1, code, marker["reason"] if marker else None)
        i = end + 1


ALL = [b for path in DOCS for b in blocks(path)]
RUNNABLE = sorted({b.path for b in ALL if b.skip is None})


@pytest.fixture
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A fresh control plane per file: each page starts from an empty cluster."""
    with ControlPlane(tmp_path_factory.mktemp("docs-plane")) as plane:
        yield plane


def scratch(tmp_path: Path) -> Path:
    """A working directory like a checkout, plus the `store.pub` the docs refer to."""
    for name in ("charts", "crds", "manifests"):
        (tmp_path / name).symlink_to(REPO / name)
    key = keys.generate_private_key()
    (tmp_path / "store.pub").write_text(keys.public_key_pem(key.public_key()))
    return tmp_path


def test_every_skipped_block_says_why() -> None:
    assert ALL, "no shell blocks found"
    for block in ALL:
        assert block.skip is None or len(block.skip) > 10, f"{block.path}:{block.line}"


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_blocks_run_as_written(path: Path, plane: ControlPlane, tmp_path: Path) -> None:
    runnable = [b for b in ALL if b.path == path and b.skip is None]
    script = "set -euo pipefail\n" + "\n".join(
        f"echo '--- {path.name}:{b.line}'\n{b.code}" for b in runnable
    )
    cwd = REPO if path.name in IN_REPO else scratch(tmp_path)
    env = {
        **os.environ,
        "KUBECONFIG": str(plane.kubeconfig),
        "PATH": f"{REPO / '.venv' / 'bin'}:{plane.bin_dir}:{os.environ['PATH']}",
        "CLUSTER_DIR": str(tmp_path / "cluster"),
    }
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"a shell block in {path.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
