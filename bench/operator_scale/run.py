"""The operator at fleet scale on a real apiserver: 1,000 / 5,000 / 10,000 Nodes and EdgeNodes.

Run: `.venv/bin/python bench/operator_scale/run.py [--nodes N ...] [--delay S]`.

For each size: a fresh control plane's fleet grows to N nodes (Nodes labelled edge=true, EdgeNodes
with a hardware report); the apiserver's raw write rate is measured with the client the operator
writes with (server-side apply of one EdgeNode entry, one at a time, as the operator writes; and 8
at a time); then `edge-rollout operator --standalone` runs as a subprocess, and a ModelDeployment
selecting every node (maxUnavailable 100%, no steps) is applied. Scripted agents (one watch, a
pool of writers) answer each entry with Downloading at once and Ready after `--delay` seconds.

Measured: seconds from the apply to every EdgeNode entry written and to the deployment Ready,
EdgeNode writes and Events per node (operator metrics; Events in the namespace), the operator's
write rate against the raw rate (ratio), operator CPU seconds (/proc/<pid>/stat) for the rollout
and idle afterwards, peak RSS (VmHWM), and seconds to remove every entry when the deployment is
deleted. Each size is bounded in time; a size that runs out of time is reported as such.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.operator_scale import fleetsim
from edge_rollout.testing.controlplane import ControlPlane, free_port, stop_process
from tests.integration.fleet_support import publish_index_store
from tests.integration.reporter import fleet_hardware

REPO = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Settings:
    delay: float = 2.0
    """Agents report Ready this long after Downloading."""
    replan_seconds: float = 5.0
    """The operator's replan interval (EDGE_ROLLOUT_REPLAN_SECONDS)."""
    idle_seconds: float = 20.0
    """How long idle CPU is sampled after Ready."""
    raw_sample: int = 1000
    """EdgeNodes the raw apply rate is measured on."""


@dataclass
class Row:
    nodes: int
    create_seconds: float
    raw_rate: float
    raw_rate_parallel: float
    startup_seconds: float = 0.0
    written_seconds: float | None = None
    ready_seconds: float | None = None
    writes_per_node: float = 0.0
    events_per_node: float = 0.0
    write_rate: float = 0.0
    rollout_cpu: float = 0.0
    idle_cpu_percent: float = 0.0
    peak_rss_mib: float = 0.0
    removed_seconds: float | None = None
    note: str = ""


class Operator:
    """`edge-rollout operator --standalone` as a subprocess, with its /proc figures."""

    def __init__(self, kubeconfig: Path, log: Path, replan_seconds: float) -> None:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "EDGE_ROLLOUT_REPLAN_SECONDS": str(replan_seconds),
            # The scripted agents report on change only, never a heartbeat (10,000 heartbeats
            # every 30 s would be a benchmark of their own): tell the operator so, or every node
            # not yet asked 2 minutes after it was indexed would count as NoAgent.
            "EDGE_ROLLOUT_AGENT_HEARTBEAT_SECONDS": "3600",
        }
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                str(REPO / ".venv" / "bin" / "edge-rollout"),
                "operator",
                "--standalone",
                f"--metrics-port={self.metrics_port}",
                "--metrics-address=127.0.0.1",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def metric(self, name: str) -> float:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith((name + " ", name + "{")):
                    return float(line.rsplit(" ", 1)[1])
        return float("nan")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                stop_process(self.proc, grace=5)
        self.log.close()


def deployment(namespace: str, name: str, store: tuple[Path, str], selector: dict[str, Any]) -> Any:
    root, public_key = store
    return {
        "apiVersion": "edgerollout.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {
                "name": "m",
                "version": "1.0",
                "store": {"url": f"file://{root}", "publicKey": public_key},
            },
            "nodeSelector": selector,
            "strategy": {"maxUnavailable": "100%", "minReadySeconds": 0},
        },
    }


def md_path(namespace: str, name: str = "") -> str:
    base = f"/apis/edgerollout.dev/v1alpha1/namespaces/{namespace}/modeldeployments"
    return f"{base}/{name}" if name else base


def md_status(api: fleetsim.Api, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = api.call("GET", md_path(namespace, name)) or {}
    return found.get("status") or {}


def install_crds(plane: ControlPlane) -> None:
    kubectl = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}"]
    names = ["crd/modeldeployments.edgerollout.dev", "crd/edgenodes.edgerollout.dev"]
    for attempt in range(3):
        applied = subprocess.run(
            [*kubectl, "apply", "--server-side", "-f", str(REPO / "crds")],
            capture_output=True,
            text=True,
            check=False,
        )
        waited = subprocess.run(
            [*kubectl, "wait", "--for=condition=Established", "--timeout=60s", *names],
            capture_output=True,
            text=True,
            check=False,
        )
        if applied.returncode == 0 and waited.returncode == 0:
            return
        time.sleep(1 + attempt)
    raise RuntimeError(f"CRDs not installed: {applied.stderr}{waited.stderr}")


def measure(
    plane: ControlPlane,
    api: fleetsim.Api,
    store: tuple[Path, str],
    names: list[str],
    create_seconds: float,
    settings: Settings,
    workdir: Path,
) -> Row:
    n = len(names)
    sample = names[: min(n, settings.raw_sample)]
    row = Row(
        n,
        create_seconds,
        fleetsim.raw_patch_rate(plane, sample, threads=1),
        fleetsim.raw_patch_rate(plane, sample, threads=8),
    )
    namespace = f"scale-{n}"
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    budget = 120 + 0.12 * n
    operator = Operator(plane.kubeconfig, workdir / f"operator-{n}.log", settings.replan_seconds)
    try:
        with fleetsim.watching(api, set(names), f"{namespace}/m", settings.delay) as agents:
            run_rollout(api, operator, store, namespace, row, agents, budget, settings)
    finally:
        operator.stop()
    return row


def run_rollout(
    api: fleetsim.Api,
    operator: Operator,
    store: tuple[Path, str],
    namespace: str,
    row: Row,
    agents: fleetsim.Agents,
    budget: float,
    settings: Settings,
) -> None:
    started = time.monotonic()
    # A deployment that selects nothing: its status says the operator has indexed the fleet.
    warmup = deployment(namespace, "warmup", store, {"matchLabels": {"none": "none"}})
    api.call("POST", md_path(namespace), warmup)
    if not fleetsim.wait_until(
        lambda: bool(md_status(api, namespace, "warmup").get("observedGeneration")), budget
    ):
        row.note = "operator did not start in time"
        return
    row.startup_seconds = time.monotonic() - started
    cpu_before = operator.cpu_seconds()
    applied = time.monotonic()
    api.call(
        "POST",
        md_path(namespace),
        deployment(namespace, "m", store, {"matchLabels": {"edge": "true"}}),
    )
    if fleetsim.wait_until(lambda: agents.seen.entries >= row.nodes, budget):
        row.written_seconds = agents.seen.last_entry - applied
    if fleetsim.wait_until(lambda: md_status(api, namespace, "m").get("phase") == "Ready", budget):
        row.ready_seconds = time.monotonic() - applied
    row.rollout_cpu = operator.cpu_seconds() - cpu_before
    spread = max(1e-9, agents.seen.last_entry - agents.seen.first_entry)
    row.write_rate = agents.seen.entries / spread
    row.writes_per_node = operator.metric("edge_rollout_edgenode_writes_total") / row.nodes
    events = api.call("GET", f"/api/v1/namespaces/{namespace}/events?limit=100000")
    row.events_per_node = len(events.get("items", [])) / row.nodes
    idle_start = operator.cpu_seconds()
    time.sleep(settings.idle_seconds)
    row.idle_cpu_percent = (operator.cpu_seconds() - idle_start) / settings.idle_seconds * 100
    row.peak_rss_mib = operator.peak_rss_mib()
    if row.ready_seconds is None:
        row.note = (
            f"not Ready within {budget:.0f}s: {md_status(api, namespace, 'm').get('message')}"
        )
    deleted = time.monotonic()
    api.call("DELETE", md_path(namespace, "m"))
    if fleetsim.wait_until(lambda: agents.seen.removed >= agents.seen.entries, budget):
        row.removed_seconds = agents.seen.last_removed - deleted
    api.call("DELETE", md_path(namespace, "warmup"))


def table(rows: list[Row]) -> str:
    def sec(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else "timed out"

    columns = [
        "nodes",
        "fleet created (s)",
        "operator start (s)",
        "apply -> all entries written (s)",
        "apply -> Ready (s)",
        "EdgeNode writes / node",
        "Events / node",
        "operator writes/s",
        "raw apiserver applies/s (1 client; 8 clients)",
        "operator / raw (1 client)",
        "operator CPU for the rollout (s)",
        "idle CPU",
        "peak RSS (MiB)",
        "delete -> entries removed (s)",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + " ---: |" * len(columns)]
    for r in rows:
        cells = [
            f"{r.nodes:,}",
            f"{r.create_seconds:.0f}",
            f"{r.startup_seconds:.1f}",
            sec(r.written_seconds),
            sec(r.ready_seconds),
            f"{r.writes_per_node:.2f}",
            f"{r.events_per_node:.2f}",
            f"{r.write_rate:.0f}",
            f"{r.raw_rate:.0f}; {r.raw_rate_parallel:.0f}",
            f"{r.write_rate / r.raw_rate:.2f}",
            f"{r.rollout_cpu:.1f}",
            f"{r.idle_cpu_percent:.1f}%",
            f"{r.peak_rss_mib:.0f}",
            sec(r.removed_seconds),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r.nodes:,} nodes: {r.note}" for r in rows if r.note]
    return "\n".join(lines + notes)


@contextlib.contextmanager
def control_plane(workdir: Path) -> Iterator[ControlPlane]:
    with ControlPlane(workdir / "control-plane") as plane:
        install_crds(plane)
        yield plane


def run(sizes: list[int], settings: Settings, workdir: Path) -> list[Row]:
    rows = []
    store = publish_index_store(workdir / "store", ["1.0"])
    hardware = fleet_hardware(max(sizes))
    names = sorted(hardware)
    with control_plane(workdir) as plane:
        api = fleetsim.Api(plane)
        created: list[str] = []
        for n in sorted(sizes):
            new = {name: hardware[name] for name in names[len(created) : n]}
            seconds = fleetsim.create_fleet(api, new)
            created += list(new)
            row = measure(plane, api, store, created, seconds, settings, workdir)
            print(table([row]).splitlines()[-1], file=sys.stderr)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, action="append", help="fleet sizes (repeatable)")
    parser.add_argument("--delay", type=float, default=2.0, help="agents' Downloading -> Ready")
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.workdir))
        rows = run(args.nodes or [1_000, 5_000, 10_000], Settings(args.delay), workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            rows = run(args.nodes or [1_000, 5_000, 10_000], Settings(args.delay), Path(tmp))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
