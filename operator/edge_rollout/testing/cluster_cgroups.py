"""The cluster's cgroup tree: every process of the cluster lives under `/<root>` of each hierarchy.

Daemons are placed there when they start, the kubelets put their Pods below it (`cgroupRoot`), so
stopping the cluster is "kill what the tree holds, then remove the tree", from any process, without
pid files that could name a recycled pid. Only directories under the cluster's own root are touched.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


class CgroupError(RuntimeError):
    """A cgroup of the cluster could not be made, joined or removed."""


def hierarchies() -> list[Path]:
    """Mounted cgroup hierarchies (v1 controllers, name=systemd, the unified v2 when mounted)."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        return [CGROUP_FS]  # pure cgroup v2
    return sorted(p for p in CGROUP_FS.iterdir() if (p / "cgroup.procs").exists())


def make_cgroup(relative: str) -> None:
    """`/<relative>` in every hierarchy; cpuset levels inherit their parent's cpus and mems."""
    for hierarchy in hierarchies():
        path = hierarchy
        for part in Path(relative).parts:
            path = path / part
            if not path.exists():
                path.mkdir()
                _inherit_cpuset(path)


def _inherit_cpuset(path: Path) -> None:
    for name in ("cpuset.cpus", "cpuset.mems"):
        mine = path / name
        if mine.exists() and not mine.read_text().strip():
            mine.write_text((path.parent / name).read_text())


def joiner(relative: str) -> Callable[[], None]:
    """A `preexec_fn` that moves the starting child into `/<relative>` of every hierarchy."""
    targets = [h / relative / "cgroup.procs" for h in hierarchies()]

    def join() -> None:
        for target in targets:
            if target.exists():
                target.write_text(str(os.getpid()))

    return join


def walk(root: str) -> Iterator[Path]:
    """Every cgroup directory under `/<root>` in every hierarchy, deepest first."""
    for hierarchy in hierarchies():
        top = hierarchy / root
        if top.is_dir():
            for dirpath, _dirs, _files in os.walk(top, topdown=False):
                yield Path(dirpath)


def pids(root: str) -> set[int]:
    """Processes under `/<root>` in any hierarchy."""
    found: set[int] = set()
    for path in walk(root):
        try:
            found.update(int(p) for p in (path / "cgroup.procs").read_text().split())
        except OSError:
            continue
    return found


def kill_all(root: str, grace: float = 10.0) -> int:
    """SIGTERM every process under `/<root>`, SIGKILL what is left after `grace`; the count."""
    first = pids(root)
    _signal(first, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    for _ in range(50):
        left = pids(root)
        if not left:
            return len(first)
        _signal(left, signal.SIGKILL)
        time.sleep(0.1)
    raise CgroupError(f"processes {sorted(pids(root))} under /{root} survived SIGKILL")


def _signal(targets: set[int], sig: signal.Signals) -> None:
    for pid in targets:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


def remove_tree(root: str) -> None:
    """rmdir `/<root>` and everything below it, in every hierarchy (kill_all first)."""
    for path in walk(root):
        for _ in range(20):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY while the kernel reaps the last task
                time.sleep(0.1)
        else:
            raise CgroupError(f"cannot remove cgroup {path}: it still holds tasks")
