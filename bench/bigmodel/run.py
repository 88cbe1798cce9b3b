"""A transformer-like model of several GB with external data: published, installed by a real agent
and updated by delta, with the memory of every step.

Run: `.venv/bin/python bench/bigmodel/run.py [--gigabytes 0.25 2] [--work DIR]`.

For each size: a synthetic transformer (`edge_rollout.testing.transformer`, weights in
`model.onnx.data`) is published as version 1 with `edge-rollout publish` and nothing but `--name`,
`--version`, `--store`, `--key` (and `--runs 3`); a real `edge-rollout-agent` installs its fp32
variant from nginx; version 2 (20% of the layers fine-tuned) is published against it and the agent
updates. Memory is sampled every 0.2 s: the publisher's own peak (VmHWM), the peak sum of the
publisher and its children (the measuring subprocesses), and the agent's peak RSS per phase of its
status (Downloading and Verifying stream; Loading and Testing hold the model in onnxruntime).
Bytes on the wire are nginx's `$body_bytes_sent`. The issue-12 target is publish peak RSS at most
2x the model file + 500 MB. Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from bench.operator_scale.run import install_crds  # noqa: E402
from edge_rollout.store.reader import StoreReader  # noqa: E402
from edge_rollout.testing import transformer  # noqa: E402
from edge_rollout.testing.controlplane import ControlPlane  # noqa: E402
from edge_rollout.testing.nginx import Nginx, NginxServer  # noqa: E402
from tests.integration.agent_fixtures import (  # noqa: E402
    AgentProcess,
    edgenode,
    model_status,
    set_models,
    wait_for,
)
from tests.integration.test_diff_fetch_bytes import served  # noqa: E402
from tests.support import Kubectl  # noqa: E402

MIB = 1 << 20
AGENT_PHASES = ("Downloading", "Verifying", "Loading", "Testing")
CLI = str(Path(sys.executable).parent / "edge-rollout")


def _status_kib(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    kids = [int(p) for p in found]
    return kids + [g for k in kids for g in _children(k)]


@dataclass
class Sampler:
    """Samples a process and its descendants: its own peak, the tree's peak sum, and (with
    `phase`) the peak RSS per phase that `phase()` returns at each sample."""

    pid: int
    phase: Any = None
    own_peak_kib: int = 0
    tree_peak_kib: int = 0
    by_phase: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            self.own_peak_kib = max(self.own_peak_kib, _status_kib(self.pid, "VmHWM"))
            rss = [_status_kib(p, "VmRSS") for p in [self.pid, *_children(self.pid)]]
            self.tree_peak_kib = max(self.tree_peak_kib, sum(rss))
            if self.phase is not None:
                name = str(self.phase())
                self.by_phase[name] = max(self.by_phase.get(name, 0), rss[0])
            self.stop.wait(0.2)

    def __enter__(self) -> Sampler:
        threading.Thread(target=self.run, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()


def make_models(work: Path, gigabytes: float) -> tuple[Path, Path, int]:
    """v1/model.onnx and v2/model.onnx (20% of the layers drifted by 1e-2), weights external."""
    shape = transformer.shape_for(int(gigabytes * (1 << 30)))
    v1 = transformer.save(transformer.build(shape), _dir(work / "v1") / "model.onnx", True)
    model = transformer.build(shape)  # saving with external data emptied the first one
    rng = np.random.default_rng(1)
    tuned = {f"l{i}." for i in range(0, shape.layers, 5)}
    for i, t in enumerate(model.graph.initializer):
        if any(t.name.startswith(p) for p in tuned) and len(t.dims) == 2:
            values = numpy_helper.to_array(t)
            values = values + rng.standard_normal(values.shape, dtype=np.float32) * 1e-2
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(values, t.name))
    v2 = transformer.save(model, _dir(work / "v2") / "model.onnx", external=True)
    return v1, v2, _file_bytes(v1)


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file_bytes(model: Path) -> int:
    return sum(p.stat().st_size for p in model.parent.iterdir())


def publish(model: Path, version: str, store: Path, key: Path) -> dict[str, Any]:
    argv = [CLI, "publish", str(model), "--name", "llm", "--version", version,
            "--store", str(store), "--key", str(key), "--runs", "3"]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with Sampler(proc.pid) as sampler:
        out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"publish {version} failed:\n{out.decode()[-4000:]}")
    return {"seconds": time.monotonic() - started, "own_mib": sampler.own_peak_kib / 1024,
            "tree_mib": sampler.tree_peak_kib / 1024}  # fmt: skip


def desired(reader: StoreReader, url: str, key: Path, version: str) -> dict[str, Any]:
    release = reader.fetch_release("llm", version)
    variant = release.variant("fp32")
    assert variant is not None
    return {"name": "ns/llm", "model": "llm", "version": version, "variant": "fp32",
            "manifestDigest": variant.manifest_digest, "storeUrl": url,
            "publicKey": Path(f"{key}.pub").read_text(), "keepVersion": "1"}  # fmt: skip


def install(
    kubectl: Kubectl, agent: AgentProcess, nginx: Nginx, want: dict[str, Any]
) -> dict[str, Any]:
    """Write the desired model, wait for Ready; wire bytes, seconds and RSS by phase."""

    def phase() -> str:
        status = model_status(kubectl, agent.node, "ns/llm") or {}
        return f"{status.get('phase', '-')}@{status.get('version', '-')}"

    assert agent.proc is not None
    start = nginx.access_log.stat().st_size
    started = time.monotonic()
    with Sampler(agent.proc.pid, phase) as sampler:
        set_models(kubectl, agent.node, [want])
        version = want["version"]

        def ready() -> Any:
            status = model_status(kubectl, agent.node, "ns/llm") or {}
            return status.get("phase") == "Ready" and status.get("activeVersion") == version

        wait_for(f"{version} Ready", ready, timeout=3600, log=agent.log)
    wire, _ = served(nginx.access_log, start)
    phases = {k.split("@")[0]: round(v / 1024) for k, v in sampler.by_phase.items()
              if k.endswith("@" + want["version"])}  # fmt: skip
    return {"seconds": time.monotonic() - started, "wire": wire, "rss_mib_by_phase": phases}


def one_size(work: Path, gigabytes: float) -> dict[str, Any]:
    v1, v2, size = make_models(work, gigabytes)
    key = work / "keys" / "release.key"
    subprocess.run([CLI, "keygen", str(key)], check=True, capture_output=True)
    result: dict[str, Any] = {"gigabytes": gigabytes, "file_bytes": size}
    with ControlPlane(work / "plane") as plane, NginxServer(work / "root", work / "nginx") as ng:
        install_crds(plane)
        kubectl = Kubectl(plane)
        result["publish_v1"] = publish(v1, "1", ng.root, key)
        result["publish_v2"] = publish(v2, "2", ng.root, key)
        reader = StoreReader.open(ng.url, Path(f"{key}.pub").read_text())
        node = f"big-{random.randrange(10**6)}"
        agent = AgentProcess(node, plane.kubeconfig, work / "data", work / "agent.log")
        with agent:
            wait_for("EdgeNode", lambda: edgenode(kubectl, node), log=agent.log)
            result["install_v1"] = install(kubectl, agent, ng, desired(reader, ng.url, key, "1"))
            result["update_v2"] = install(kubectl, agent, ng, desired(reader, ng.url, key, "2"))
    return result


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model (files) | step | seconds | publisher peak RSS | with its children | target"
        " (2x file + 500 MB) | agent RSS: Downloading / Verifying / Loading / Testing | wire |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        size = r["file_bytes"]
        target = (2 * size + 500 * 10**6) / MIB
        name = f"{size / 1e9:.2f} GB"
        for step in ("publish_v1", "publish_v2"):
            p = r[step]
            mark = "met" if p["own_mib"] <= target else "missed"
            lines.append(f"| {name} | {step} | {p['seconds']:.0f} | {p['own_mib']:.0f} MiB |"
                         f" {p['tree_mib']:.0f} MiB | {target:.0f} MiB, {mark} | | |")  # fmt: skip
        for step in ("install_v1", "update_v2"):
            a = r[step]
            rss = a["rss_mib_by_phase"]
            phases = " / ".join(str(rss.get(k, "-")) for k in AGENT_PHASES)
            lines.append(f"| {name} | {step} | {a['seconds']:.0f} | | | | {phases} MiB |"
                         f" {a['wire']:,} B ({a['wire'] / size:.1%}) |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[0.25, 2.0])
    parser.add_argument("--work", type=Path, default=None, help="kept when given")
    args = parser.parse_args(argv)
    rows = []
    for gigabytes in args.gigabytes:
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            rows.append(one_size(Path(tmp), gigabytes))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
