"""Chaos, scripted and bounded: crash the operator, the agents, the store and the apiserver during
rollouts, and count what broke.

Run: `.venv/bin/python bench/chaos/run.py [--quick]` (the full run takes several minutes; the
tests run `--quick` sizes through tests/integration/test_chaos_smoke.py).

- **operator SIGKILL**: `edge-rollout operator` (a subprocess) is killed at random moments while
  rollouts 1.0 -> 2.0 -> ... run over scripted nodes (maxUnavailable 10, one step at 30%), and
  restarted at once. An observer checks every 100 ms, from the EdgeNode entries the agents see
  and what they report, that no more than maxUnavailable nodes are asked for the target and not
  yet serving it.
- **apiserver restart**: kube-apiserver stopped for 10 s in the middle of a rollout, then
  started again with the same flags (etcd keeps the data).
- **agent SIGKILL**: a real agent (`edge-rollout-agent`, small models served by nginx) killed at
  random points of updates; after each kill, `current` must verify against its manifest digest.
- **store faults**: a fault-injecting proxy (tests/fixtures/faulty_http.py) in front of nginx
  serves 5xx, resets, truncated bodies, stalls and flipped bits to fresh agents; and flipped bits
  on every request, which must be reported and never activated.

Reports, per scenario: trials, rollouts or installs completed, maxUnavailable exceeded (must be
0), corrupt activations (must be 0), objects or models lost (must be 0), time to recover.

`--random [--seed N] [--faults 200] [--timeout 3600]` runs bench/chaos/moments.py instead: the
faults of issue 14 at moments drawn from a seed, then a digest-verified consistency check.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.chaos import moments
from bench.operator_scale import fleetsim
from bench.operator_scale import run as scale
from edge_rollout.testing.controlplane import ControlPlane, stop_process
from edge_rollout.testing.nginx import Nginx, NginxServer
from edge_rollout_agent.layout import ModelDir, sha256_file
from tests.fixtures.faulty_http import KINDS, Fault, FaultyProxy
from tests.integration.agent_fixtures import AgentProcess, edgenode, model_status, set_models
from tests.integration.fleet_support import publish_index_store
from tests.integration.reporter import fleet_hardware
from tests.integration.test_agent import publish
from tests.support import Kubectl
from tests.unit.agent.storefixture import ScratchStore

MAX_UNAVAILABLE = 10
NAMESPACE = "chaos"


@dataclass(frozen=True)
class Sizes:
    nodes: int = 200
    operator_kills: int = 20
    rollouts: int = 4
    agent_kills: int = 100
    fault_trials: int = 3
    apiserver_down: float = 10.0
    kill_model: int = 384
    """Side of the square test model the killed agent installs (384: ~600 KB)."""
    fault_model: int = 256
    """Side of the model installed through store faults (256: ~260 KB, 42 chunks)."""


QUICK = Sizes(
    nodes=40,
    operator_kills=3,
    rollouts=1,
    agent_kills=6,
    fault_trials=1,
    apiserver_down=3.0,
    kill_model=96,
    fault_model=96,
)


@dataclass
class Outcome:
    scenario: str
    trials: int = 0
    completed: int = 0
    attempted: int = 0
    exceeded: int = 0
    """Observations with more than maxUnavailable nodes unavailable."""
    corrupt: int = 0
    lost: int = 0
    recover: list[float] = field(default_factory=list)
    note: str = ""

    def row(self) -> str:
        recover = (
            f"{statistics.median(self.recover):.1f} / {max(self.recover):.1f}"
            if self.recover
            else "-"
        )
        return (
            f"| {self.scenario} | {self.trials} | {self.completed}/{self.attempted} "
            f"| {self.exceeded} | {self.corrupt} | {self.lost} | {recover} | {self.note} |"
        )


def table(outcomes: list[Outcome]) -> str:
    head = (
        "| scenario | trials | completed | maxUnavailable exceeded | corrupt activations "
        "| objects/models lost | time to recover, median / max (s) | notes |"
    )
    return "\n".join([head, "|" + " --- |" * 8, *(o.row() for o in outcomes)])


# ----- operator and apiserver chaos over scripted nodes ------------------------------------------


class Observer:
    """Checks maxUnavailable every 100 ms from what the scripted agents see and report."""

    def __init__(self, agents: fleetsim.Agents) -> None:
        self.agents = agents
        self.target = ""
        self.exceeded = 0
        self.worst = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            if self.target:
                unavailable = self.agents.unavailable(self.target)
                self.worst = max(self.worst, unavailable)
                self.exceeded += unavailable > MAX_UNAVAILABLE


def deployment(store: tuple[Path, str], version: str) -> dict[str, Any]:
    body: dict[str, Any] = scale.deployment(
        NAMESPACE, "m", store, {"matchLabels": {"edge": "true"}}
    )
    body["spec"]["model"]["version"] = version
    body["spec"]["strategy"] = {
        "maxUnavailable": MAX_UNAVAILABLE,
        "minReadySeconds": 0,
        "steps": [{"setNodePercent": 30}],
    }
    return body


def set_version(api: fleetsim.Api, version: str) -> None:
    patch = {"spec": {"model": {"version": version}}}
    api.call("PATCH", scale.md_path(NAMESPACE, "m"), patch, "application/merge-patch+json")


def done(api: fleetsim.Api, agents: fleetsim.Agents, version: str, nodes: int) -> bool:
    status = scale.md_status(api, NAMESPACE, "m")
    ready = status.get("phase") == "Ready" and status.get("stableVersion") == version
    return ready and agents.serving(version) == nodes


@contextmanager
def fleet(workdir: Path, sizes: Sizes) -> Iterator[tuple[ControlPlane, fleetsim.Api, Any]]:
    versions = [f"{i}.0" for i in range(1, sizes.rollouts + 3)]
    store = publish_index_store(workdir / "store", versions)
    with scale.control_plane(workdir) as plane:
        api = fleetsim.Api(plane)
        fleetsim.create_fleet(api, fleet_hardware(sizes.nodes))
        api.call("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        yield plane, api, store


def operator_chaos(
    plane: ControlPlane, api: fleetsim.Api, store: Any, sizes: Sizes, workdir: Path
) -> list[Outcome]:
    kills = Outcome("operator SIGKILL during rollouts")
    restart = Outcome(f"kube-apiserver down {sizes.apiserver_down:.0f} s mid-rollout")
    names = set(fleet_hardware(sizes.nodes))
    rng = random.Random(7)
    log = workdir / "operator.log"
    with (
        fleetsim.watching(api, names, f"{NAMESPACE}/m", delay=1.0) as agents,
        Observer(agents) as observer,
    ):
        operator = scale.Operator(plane.kubeconfig, log, replan_seconds=1.0)
        try:
            observer.target = "1.0"
            api.call("POST", scale.md_path(NAMESPACE), deployment(store, "1.0"))
            if not fleetsim.wait_until(lambda: done(api, agents, "1.0", len(names)), 300):
                kills.note = "the first install did not finish"
                return [kills, restart]
            per_rollout = _spread(sizes.operator_kills, sizes.rollouts)
            for i, count in enumerate(per_rollout):
                version = f"{i + 2}.0"
                observer.target = version
                set_version(api, version)
                kills.attempted += 1
                for _ in range(count):
                    time.sleep(rng.uniform(0.5, 4.0))
                    operator.kill()
                    kills.trials += 1
                    operator = scale.Operator(plane.kubeconfig, log, replan_seconds=1.0)
                    finished = functools.partial(done, api, agents, version, len(names))
                    kills.recover.append(_progress_after(agents, finished))
                kills.completed += fleetsim.wait_until(
                    functools.partial(done, api, agents, version, len(names)), 300
                )
            kills.exceeded = observer.exceeded
            kills.lost = _lost(api, names, f"{sizes.rollouts + 1}.0")
            _apiserver_restart(plane, api, agents, observer, restart, sizes, names)
        finally:
            operator.stop()
    kills.note = f"worst unavailable {observer.worst} of max {MAX_UNAVAILABLE}"
    return [kills, restart]


def _apiserver_restart(
    plane: ControlPlane,
    api: fleetsim.Api,
    agents: fleetsim.Agents,
    observer: Observer,
    outcome: Outcome,
    sizes: Sizes,
    names: set[str],
) -> None:
    version = f"{sizes.rollouts + 2}.0"
    before = observer.exceeded
    observer.target = version
    set_version(api, version)
    outcome.attempted = outcome.trials = 1
    fleetsim.wait_until(lambda: agents.serving(version) >= len(names) // 4, 120, 0.1)
    apiserver = plane.processes.pop()
    args = [str(a) for a in apiserver.args]  # type: ignore[union-attr]
    stop_process(apiserver)
    time.sleep(sizes.apiserver_down)
    with (plane.workdir / "kube-apiserver.log").open("ab") as log:
        plane.processes.append(
            subprocess.Popen(args, stdout=log, stderr=log, start_new_session=True)
        )
    started = time.monotonic()
    fleetsim.wait_until(lambda: _ready(api), 120, 0.1)
    back = time.monotonic() - started
    finished = functools.partial(done, api, agents, version, len(names))
    outcome.recover.append(back + _progress_after(agents, finished, timeout=180))
    outcome.note = f"kube-apiserver ready {back:.1f} s after its start"
    outcome.completed = int(
        fleetsim.wait_until(lambda: done(api, agents, version, len(names)), 300)
    )
    outcome.exceeded = observer.exceeded - before
    outcome.lost = _lost(api, names, version)


def _ready(api: fleetsim.Api) -> bool:
    try:
        return api.session().get(api.url + "/readyz", timeout=2).status_code == 200
    except Exception:  # not listening yet
        return False


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _progress_after(
    agents: fleetsim.Agents, finished: Callable[[], bool], timeout: float = 120.0
) -> float:
    """Seconds until the operator writes again (an agent is asked for something), or until the
    rollout is done; 0 when it had already finished."""
    if finished():
        return 0.0
    started = time.monotonic()
    asked = agents.progress()[0]
    fleetsim.wait_until(lambda: agents.progress()[0] != asked or finished(), timeout, 0.05)
    return time.monotonic() - started


def _lost(api: fleetsim.Api, names: set[str], version: str) -> int:
    """EdgeNodes gone, or without this deployment's entry, or the deployment gone."""
    listing = api.call("GET", fleetsim.EDGENODES)
    present = {
        item["metadata"]["name"]
        for item in listing["items"]
        if any(
            m["name"] == f"{NAMESPACE}/m" and m["version"] == version
            for m in (item.get("spec") or {}).get("models", [])
        )
    }
    deployment_gone = not scale.md_status(api, NAMESPACE, "m")
    return len(names - present) + int(deployment_gone)


# ----- real agents: kill -9 and store faults ----------------------------------------------------


def current_intact(data_dir: Path) -> tuple[bool, str | None]:
    """(current verifies against its manifest digest, the version it points at)."""
    model_dir = ModelDir(data_dir, "ns/dep")
    current = model_dir.link("current")
    if current is None:
        return True, None
    manifest = model_dir.manifest(current)
    if manifest is None:
        return False, current.version
    ok = sha256_file(model_dir.path(current) / "model.onnx") == manifest.main_file.digest
    return ok, current.version


def ready_on(kubectl: Kubectl, node: str, version: str) -> Callable[[], bool]:
    def probe() -> bool:
        status = model_status(kubectl, node, "ns/dep") or {}
        return (
            status.get("phase") in ("Ready", "RolledBack")
            and status.get("activeVersion") == version
        )

    return probe


@contextmanager
def agent(plane: ControlPlane, kubectl: Kubectl, work: Path, *extra: str) -> Iterator[AgentProcess]:
    node = f"chaos-{random.randrange(10**6)}"
    work.mkdir(parents=True, exist_ok=True)
    process = AgentProcess(
        node, plane.kubeconfig, work / "data", work / "agent.log", extra=list(extra)
    )
    process.start()
    try:
        fleetsim.wait_until(lambda: edgenode(kubectl, node) is not None, 60, 0.2)
        yield process
    finally:
        process.kill(signal.SIGTERM)


def agent_kills(
    plane: ControlPlane, kubectl: Kubectl, nginx: Nginx, sizes: Sizes, work: Path
) -> Outcome:
    outcome = Outcome("agent SIGKILL at random points of updates")
    work.mkdir(parents=True, exist_ok=True)
    store = ScratchStore(nginx.root)
    versions = [publish(store, work, f"{i}.0", sizes.kill_model, 0.1 * i) for i in range(1, 4)]
    rng = random.Random(100)
    with agent(plane, kubectl, work / "kills") as process:
        for trial in range(sizes.agent_kills):
            wanted = versions[trial % len(versions)]
            capped = {"delivery": {"maxBandwidth": "300k"}} if trial % 2 == 0 else {}
            set_models(kubectl, process.node, [wanted | {"storeUrl": nginx.url} | capped])
            time.sleep(rng.uniform(0.2, 2.5))
            process.kill(signal.SIGKILL)
            outcome.trials += 1
            ok, _ = current_intact(work / "kills" / "data")
            outcome.corrupt += not ok
            process.start()
            if trial % 10 == 9 or trial == sizes.agent_kills - 1:
                outcome.attempted += 1
                started = time.monotonic()
                if fleetsim.wait_until(
                    ready_on(kubectl, process.node, wanted["version"]), 180, 0.2
                ):
                    outcome.completed += 1
                    outcome.recover.append(time.monotonic() - started)
        ok, version = current_intact(work / "kills" / "data")
        outcome.corrupt += not ok
        outcome.lost += version != versions[(sizes.agent_kills - 1) % len(versions)]["version"]
    return outcome


def store_faults(
    plane: ControlPlane, kubectl: Kubectl, nginx: Nginx, sizes: Sizes, work: Path
) -> list[Outcome]:
    work.mkdir(parents=True, exist_ok=True)
    store = ScratchStore(nginx.root)
    version = publish(store, work, "7.0", sizes.fault_model, 0.7)
    outcomes = []
    for kind in KINDS:
        outcome = Outcome(f"store fault: {kind} (transient)")
        for trial in range(sizes.fault_trials):
            outcome.trials += 1
            outcome.attempted += 1
            trial_dir = work / f"{kind}-{trial}"
            with (
                FaultyProxy(nginx.url, Fault(kind, times=1, stall_seconds=4)) as proxy,
                agent(plane, kubectl, trial_dir, "--store-timeout", "2") as process,
            ):
                started = time.monotonic()
                set_models(kubectl, process.node, [version | {"storeUrl": proxy.url}])
                if fleetsim.wait_until(ready_on(kubectl, process.node, "7.0"), 120, 0.2):
                    outcome.completed += 1
                    outcome.recover.append(time.monotonic() - started)
            ok, _ = current_intact(trial_dir / "data")
            outcome.corrupt += not ok
            outcome.note = f"{sum(v for k, v in proxy.injected.items() if ':' not in k)} injected"
        outcomes.append(outcome)
    outcomes.append(persistent_flips(plane, kubectl, nginx, store, work, sizes.fault_model))
    return outcomes


def persistent_flips(
    plane: ControlPlane,
    kubectl: Kubectl,
    nginx: Nginx,
    store: ScratchStore,
    work: Path,
    size: int,
) -> Outcome:
    """Every response corrupted: the update is reported failed, the old model keeps serving."""
    outcome = Outcome("store fault: flip on every request", trials=1, attempted=1)
    v1 = publish(store, work, "8.0", size, 0.8)
    v2 = publish(store, work, "9.0", size, 0.9)
    trial_dir = work / "flip-always"
    with agent(plane, kubectl, trial_dir) as process:
        set_models(kubectl, process.node, [v1 | {"storeUrl": nginx.url}])
        fleetsim.wait_until(ready_on(kubectl, process.node, "8.0"), 120, 0.2)
        with FaultyProxy(nginx.url, Fault("flip", times=None)) as proxy:
            set_models(kubectl, process.node, [v2 | {"storeUrl": proxy.url}])

            def reported() -> bool:
                status = model_status(kubectl, process.node, "ns/dep") or {}
                return (status.get("lastError") or {}).get("reason") in (
                    "ChunkCorrupt",
                    "DigestMismatch",
                )

            outcome.completed = int(fleetsim.wait_until(reported, 120, 0.2))
        ok, serving = current_intact(trial_dir / "data")
        outcome.corrupt += not ok
        outcome.lost += serving != "8.0"
        outcome.note = f"reported and kept serving 8.0; {proxy.injected['flip']} injected"
    return outcome


def run(sizes: Sizes, workdir: Path) -> list[Outcome]:
    outcomes = []
    with fleet(workdir / "fleet", sizes) as (plane, api, store):
        outcomes += operator_chaos(plane, api, store, sizes, workdir)
        kubectl = Kubectl(plane)
        with NginxServer(workdir / "nginx-root", workdir / "nginx") as nginx:
            outcomes.append(agent_kills(plane, kubectl, nginx, sizes, workdir / "agents"))
            outcomes += store_faults(plane, kubectl, nginx, sizes, workdir / "faults")
    return outcomes


def random_main(args: argparse.Namespace) -> int:
    """The seeded random run on a control plane of its own; non-zero on any inconsistency."""
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    settings = moments.Settings(seed, args.faults, args.timeout, settle=args.settle)
    with (
        tempfile.TemporaryDirectory(prefix="bench-chaos-random-") as tmp,
        scale.control_plane(Path(tmp)) as plane,
    ):
        Kubectl(plane)("create", "namespace", NAMESPACE)
        report = moments.run_on(plane, NAMESPACE, Path(tmp) / "fleet", settings)
    replay = f".venv/bin/python bench/chaos/run.py --random --seed {seed} --faults {args.faults}"
    print(report.summary(replay), flush=True)
    return 1 if report.inconsistent or report.cut_short else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small sizes the tests use")
    parser.add_argument("--random", action="store_true",
                        help="faults at random moments (bench/chaos/moments.py)")  # fmt: skip
    parser.add_argument("--seed", type=int, help="--random: replay this seed (default: drawn)")
    parser.add_argument("--faults", type=int, default=200, help="--random: how many faults")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="--random: seconds after which no new fault starts")  # fmt: skip
    parser.add_argument("--settle", type=float, default=120.0,
                        help="--random: seconds a healed fleet has to settle")  # fmt: skip
    args = parser.parse_args(argv)
    if args.random:
        return random_main(args)
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
        outcomes = run(QUICK if args.quick else Sizes(), Path(tmp))
    print(table(outcomes))
    bad = sum(o.exceeded + o.corrupt + o.lost for o in outcomes)
    print(json.dumps({"violations": bad}), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
