"""The edge agent's figures: assembly and verification throughput (next to `cat` and
`sha256sum` of the same bytes), idle RSS without a model, time from a spec change to Ready on
one node, and time to roll back to the kept version.

Run: `.venv/bin/python bench/agent/run.py [--megabytes N]`.

- **Assembly**: a file of N MiB (random bytes, chunked as the publisher chunks) staged as
  verified chunks; the agent's `_assemble_file` reads each chunk, checks its sha256, writes the
  file, hashes it whole and fsyncs. Baselines on the same chunk files, in the same run:
  `cat chunks | sha256sum` (read and hash once) and `cat chunks > file; sync file; sha256sum
  file` (what assembly does, in C). Page cache warm for all (each is run twice, the second
  counted).
- **Agent process**: `edge-rollout-agent` against a real apiserver; RSS after it has registered
  and idled with no model, next to a bare `python3` and a `python3` that imported onnxruntime.
- **Spec change -> Ready**: EdgeNode spec written -> status Ready, for a first install and for an
  update (a changed model that reuses chunks), small models served by nginx; the agent reports
  with its default heartbeat.
- **Rollback**: spec back to the kept version -> status RolledBack, and the chunk requests nginx
  served meanwhile (must be 0).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.operator_scale import fleetsim
from bench.operator_scale.run import install_crds
from edge_rollout.api.manifest import ChunkRef, FileEntry
from edge_rollout.content import chunking
from edge_rollout.testing.controlplane import ControlPlane
from edge_rollout.testing.nginx import Nginx, NginxServer
from edge_rollout_agent import sync
from tests.integration.agent_fixtures import AgentProcess, edgenode, model_status, set_models
from tests.integration.test_agent import publish
from tests.support import Kubectl
from tests.unit.agent.storefixture import ScratchStore

MIB = 1 << 20


@dataclass(frozen=True)
class Assembly:
    megabytes: int
    chunks: int
    agent: float
    cat_sha: float
    cat_write_sync_sha: float

    def rows(self) -> list[str]:
        def rate(seconds: float) -> str:
            return f"{self.megabytes / seconds:,.0f} MiB/s ({seconds:.2f} s)"

        return [
            f"| agent: read + verify {self.chunks:,} chunks, write, hash whole, fsync "
            f"| {rate(self.agent)} |",
            f"| `cat chunks \\| sha256sum` | {rate(self.cat_sha)} |",
            f"| `cat chunks > file; sync file; sha256sum file` | {rate(self.cat_write_sync_sha)} |",
        ]


def assembly(megabytes: int, work: Path) -> Assembly:
    data = np.random.default_rng(1).bytes(megabytes * MIB)
    pieces = chunking.chunk_file(data).pieces
    staging = work / "staging"
    (staging / "chunks").mkdir(parents=True)
    refs = []
    for piece in pieces:
        (staging / "chunks" / piece.digest).write_bytes(
            data[piece.offset : piece.offset + piece.size]
        )
        refs.append(ChunkRef(digest=piece.digest, size=piece.size, stored=piece.size))
    entry = FileEntry(path="model.onnx", size=len(data), digest=chunking._sha256(data), chunks=refs)
    del data
    files = " ".join(str(staging / "chunks" / r.digest) for r in refs)
    listing = work / "chunks.txt"
    listing.write_text(files)
    out = work / "out.onnx"

    def agent() -> None:
        sync._assemble_file(entry, {}, staging, out)

    def cat_sha() -> None:
        subprocess.run(f"xargs cat < {listing} | sha256sum", shell=True, check=True,
                       capture_output=True)  # fmt: skip

    def cat_write() -> None:
        subprocess.run(
            f"xargs cat < {listing} > {out}.cat && sync {out}.cat && sha256sum {out}.cat",
            shell=True, check=True, capture_output=True,
        )  # fmt: skip

    result = Assembly(megabytes, len(refs), _twice(agent), _twice(cat_sha), _twice(cat_write))
    shutil.rmtree(staging)
    return result


def _twice(action: object) -> float:
    """Wall seconds of the second of two runs (the first warms the page cache)."""
    assert callable(action)
    action()
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def python_rss(code: str) -> float:
    proc = subprocess.Popen([sys.executable, "-c", f"{code}\nimport time; time.sleep(30)"])
    try:
        time.sleep(4)
        return rss_mib(proc.pid)
    finally:
        proc.kill()
        proc.wait()


@dataclass
class Timings:
    idle_rss: float = 0.0
    idle_peak: float = 0.0
    bare_python: float = 0.0
    python_onnxruntime: float = 0.0
    install: list[float] = field(default_factory=list)
    update: list[float] = field(default_factory=list)
    rollback: list[float] = field(default_factory=list)
    rollback_chunk_requests: int = 0


def agent_timings(work: Path, rounds: int) -> Timings:
    timings = Timings()
    timings.bare_python = python_rss("pass")
    timings.python_onnxruntime = python_rss("import onnxruntime")
    with ControlPlane(work / "plane") as plane, NginxServer(work / "root", work / "nginx") as nginx:
        install_crds(plane)
        kubectl = Kubectl(plane)
        store = ScratchStore(nginx.root)
        for round_ in range(rounds):
            _one_round(plane, kubectl, nginx, store, work / f"round-{round_}", timings, round_)
    return timings


def _one_round(
    plane: ControlPlane,
    kubectl: Kubectl,
    nginx: Nginx,
    store: ScratchStore,
    work: Path,
    timings: Timings,
    round_: int,
) -> None:
    work.mkdir(parents=True)
    v1 = publish(store, work, f"{round_}.1", 1024, 0.0) | {"storeUrl": nginx.url}
    v2 = publish(store, work, f"{round_}.2", 1024, 0.5) | {"storeUrl": nginx.url}
    v2 |= {"keepVersion": v1["version"]}
    node = f"bench-{random.randrange(10**6)}"
    agent = AgentProcess(node, plane.kubeconfig, work / "data", work / "agent.log")
    with agent:
        fleetsim.wait_until(lambda: edgenode(kubectl, node) is not None, 60, 0.1)
        if round_ == 0:
            time.sleep(10)
            assert agent.proc is not None
            timings.idle_rss = rss_mib(agent.proc.pid)
            timings.idle_peak = rss_mib(agent.proc.pid, "VmHWM")
        timings.install.append(_until(kubectl, node, [v1], "Ready", v1["version"]))
        timings.update.append(_until(kubectl, node, [v2], "Ready", v2["version"]))
        before = _chunk_requests(nginx.access_log)
        timings.rollback.append(_until(kubectl, node, [v1], "RolledBack", v1["version"]))
        timings.rollback_chunk_requests += _chunk_requests(nginx.access_log) - before


def _until(
    kubectl: Kubectl, node: str, models: list[dict[str, object]], phase: str, version: object
) -> float:
    started = time.monotonic()
    set_models(kubectl, node, models)

    def reached() -> bool:
        status = model_status(kubectl, node, "ns/dep") or {}
        return status.get("phase") == phase and status.get("activeVersion") == version

    if not fleetsim.wait_until(reached, 120, 0.05):
        raise RuntimeError(f"{node} never reached {phase} on {version}")
    return time.monotonic() - started


def _chunk_requests(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if "/chunks/" in line)


def table(result: Assembly, timings: Timings) -> str:
    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    lines = ["| assembly and verification | throughput |", "| --- | ---: |", *result.rows(), ""]
    lines += [
        "| agent | figure |",
        "| --- | ---: |",
        f"| idle RSS, no model (peak) | {timings.idle_rss:.0f} MiB ({timings.idle_peak:.0f} MiB) |",
        f"| bare `python3` / `python3` + `import onnxruntime` | {timings.bare_python:.0f} MiB / "
        f"{timings.python_onnxruntime:.0f} MiB |",
        f"| spec change -> Ready, first install (~4 MiB model) | {spread(timings.install)} |",
        f"| spec change -> Ready, update reusing chunks | {spread(timings.update)} |",
        f"| spec change -> RolledBack to the kept version | {spread(timings.rollback)} |",
        f"| chunk requests during the rollbacks | {timings.rollback_chunk_requests} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=256, help="size of the assembled file")
    parser.add_argument("--rounds", type=int, default=5, help="install/update/rollback rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-agent-", dir=os.environ.get("TMPDIR")) as tmp:
        result = assembly(args.megabytes, Path(tmp) / "assembly")
        timings = agent_timings(Path(tmp) / "agent", args.rounds)
    print(table(result, timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
