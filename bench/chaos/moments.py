"""Chaos at random moments: the faults of issue 14 on a real fleet, timed by a seeded schedule.

A real kube-apiserver, `edge-rollout operator` as a process, three real agents (one GPU profile,
one on a small tmpfs of its own) and a signed store behind a fault-injecting proxy in front of
nginx. bench/chaos/schedule.py says what to break and when; at every checkpoint everything is
healed and what each agent serves (sha256 of the active file, from disk) must equal what its
EdgeNode status and the ModelDeployment status say, and what the store published.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.chaos.schedule import CHECKPOINT, FAULTS, Event, fingerprint, make_schedule
from bench.operator_scale import fleetsim
from bench.operator_scale import run as scale
from edge_rollout.cli.main import build_parser
from edge_rollout.store.reader import StoreReader
from edge_rollout.testing.controlplane import ControlPlane, stop_process
from edge_rollout.testing.nginx import NginxServer
from edge_rollout_agent.__main__ import CLOCK_OFFSET
from edge_rollout_agent.layout import ModelDir, sha256_file
from edge_rollout_agent.policy import Installed
from tests.fixtures.faulty_http import Fault, FaultyProxy
from tests.integration.store_fixtures import build_mlp
from tests.integration.test_agent_disk import fill, flip_byte
from tests.integration.test_fleet_changes import GPU_PROFILE
from tests.support import REPO, Kubectl

PLUGIN = REPO / ".venv" / "bin" / "kubectl-edge_rollout"
LABEL = "edgerollout.dev/chaos-fleet"
SERVING = ("Ready", "RolledBack")
"""EdgeNode phases in which the agent serves its active version (RolledBack: switched back to a
kept one), as the operator counts them."""
MIN_READY = 5
"""minReadySeconds of the deployment: a rollout lasts at least this long, so an abort 0.5-3 s
after it starts lands in it."""
SMALL_DISK = "8m"
"""Size of the tmpfs the small-disk agent's data directory lives on."""


@dataclass
class Agent:
    """One `edge-rollout-agent` process; with `small_disk`, its data directory is a tmpfs in a
    mount namespace held by a `sleep` of its own (agent kills keep the files, as on a node)."""

    node: str
    kubeconfig: Path
    work: Path
    gpu: bool = False
    small_disk: bool = False
    skew: int = 0
    proc: subprocess.Popen[bytes] | None = None
    holder: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        path = self.work / "data"
        if self.holder is None:
            return path
        return Path(f"/proc/{self.holder.pid}/root") / path.relative_to("/")

    def start(self) -> None:
        (self.work / "data").mkdir(parents=True, exist_ok=True)
        if self.small_disk and self.holder is None:
            self.holder = _mount_namespace(self.work / "data")
        args = [sys.executable, "-m", "edge_rollout_agent", "--node", self.node,
                "--kubeconfig", str(self.kubeconfig), "--data-dir", str(self.work / "data"),
                "--metrics-port", "0", "--heartbeat", "2", "--verify-interval", "10s",
                "--store-timeout", "3"]  # fmt: skip
        if self.gpu:
            profile = self.work / "gpu.yaml"
            profile.write_text(yaml.safe_dump(GPU_PROFILE))
            args += ["--hardware-profile", str(profile)]
        if self.holder is not None:
            args = ["nsenter", f"--target={self.holder.pid}", "--mount", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", CLOCK_OFFSET: str(self.skew)}
        with open(self.work / "agent.log", "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop_process(self.proc, grace=1)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.kill(signal.SIGTERM)
        if self.holder is not None:
            stop_process(self.holder, grace=1)
            self.holder = None


def small_disk_possible() -> bool:
    """A tmpfs in a private mount namespace needs root, unshare and nsenter."""
    tools = all(shutil.which(t) for t in ("unshare", "nsenter"))
    return tools and os.geteuid() == 0


def _mount_namespace(data: Path) -> subprocess.Popen[bytes]:
    command = f"mount -t tmpfs -o size={SMALL_DISK} tmpfs {data} && exec sleep infinity"
    holder = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", command],
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mounts = Path(f"/proc/{holder.pid}/mounts")
        if mounts.exists() and f" {data} tmpfs " in mounts.read_text():
            return holder
        time.sleep(0.05)
    stop_process(holder, grace=1)
    raise RuntimeError(f"no tmpfs mounted on {data} within 10 s")


@dataclass
class Fleet:
    """The control plane side of a run: kubectl, the namespace, the store, the operator."""

    plane: ControlPlane
    kubectl: Kubectl
    namespace: str
    fleet_id: str
    store: Path
    public_key: str
    proxy: FaultyProxy
    versions: list[str]
    agents: list[Agent]
    log_dir: Path
    operator: scale.Operator | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/m"

    def start_operator(self) -> None:
        self.operator = scale.Operator(
            self.plane.kubeconfig, self.log_dir / "operator.log", replan_seconds=1.0
        )

    def kill_operator(self) -> None:
        if self.operator is not None:
            self.operator.kill()
        self.operator = None

    def manifest(self, version: str) -> str:
        return json.dumps(
            {
                "apiVersion": "edgerollout.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": "m", "namespace": self.namespace},
                "spec": {
                    "model": {"name": "m", "version": version,
                              "store": {"url": self.proxy.url, "publicKey": self.public_key}},
                    "nodeSelector": {"matchLabels": {LABEL: self.fleet_id}},
                    "strategy": {"maxUnavailable": 2, "minReadySeconds": MIN_READY,
                                 "progressDeadlineSeconds": 600},
                },
            }
        )  # fmt: skip

    def deployment(self) -> dict[str, Any]:
        result = self.kubectl("get", "mdep", "m", "-n", self.namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def set_version(self, version: str) -> None:
        patch = json.dumps({"spec": {"model": {"version": version}}})
        self.kubectl("patch", "mdep", "m", "-n", self.namespace, "--type", "merge", "-p", patch)

    def label(self, node: str, on: bool) -> None:
        value = f"{LABEL}={self.fleet_id}" if on else f"{LABEL}-"
        self.kubectl("label", "node", node, "--overwrite", value)

    def abort(self) -> str:
        """`kubectl edge-rollout abort m --rollback`; its first line, or why it refused."""
        env = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)}
        result = subprocess.run(
            [str(PLUGIN), "abort", "m", "-n", self.namespace, "--rollback"],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        text = (result.stdout or result.stderr).strip().splitlines()
        return ("" if result.returncode == 0 else "refused: ") + (text[0] if text else "")


# ----- the store --------------------------------------------------------------------------------


def publish(work: Path, store: Path, versions: list[str]) -> str:
    """`versions` of a small MLP (fp32 and fp16) signed into `store` by the CLI's own handlers,
    in this process (its output and progress in `work`/publish.log); the public key."""
    work.mkdir(parents=True, exist_ok=True)
    commands = [["keygen", str(work / "key")]]
    for seed, version in enumerate(versions):
        model = build_mlp(work / f"mlp-{seed}.onnx", seed=seed, hidden=64)
        commands.append(
            ["publish", str(model), "--name", "m", "--version", version, "--store", str(store),
             "--key", str(work / "key"), "--variants", "fp32,fp16", "--runs", "2",
             "--samples", "1"]
        )  # fmt: skip
    with open(work / "publish.log", "w") as log, redirect_stdout(log), redirect_stderr(log):
        for argv in commands:
            args = build_parser().parse_args(argv)
            if args.handler(args):
                raise RuntimeError(f"edge-rollout {' '.join(argv)} failed; see {log.name}")
    return (work / "key.pub").read_text()


class Digests:
    """The main file's sha256 the store published for each (version, variant), read once."""

    def __init__(self, store: Path, public_key: str) -> None:
        self.reader = StoreReader.open(str(store), public_key)
        self.known: dict[tuple[str, str], str] = {}

    def __call__(self, version: str, variant: str) -> str:
        if (version, variant) not in self.known:
            release = self.reader.fetch_release("m", version)
            _, manifest = self.reader.fetch_variant(release, variant)
            self.known[version, variant] = manifest.main_file.digest
        return self.known[version, variant]


# ----- the consistency check --------------------------------------------------------------------


def edgenodes(fleet: Fleet) -> dict[str, dict[str, Any]]:
    listing = json.loads(fleet.kubectl("get", "edgenodes", "-o", "json").stdout)
    return {item["metadata"]["name"]: item for item in listing["items"]}


def _entry(items: list[dict[str, Any]] | None, key: str) -> dict[str, Any]:
    return next((m for m in items or [] if m.get("name") == key), {})


def served(data: Path, key: str) -> tuple[str, str, str]:
    """(version, variant, sha256) of what `current` serves on disk; empty strings for none."""
    model_dir = ModelDir(data, key)
    current = model_dir.link("current")
    if current is None:
        return "", "", ""
    path = model_dir.model_file(current)
    digest = sha256_file(path) if path.exists() else "missing"
    return current.version, current.variant, digest


def deployment_problems(body: dict[str, Any], nodes: int, variants: Counter[str]) -> list[str]:
    """What the ModelDeployment's status gets wrong about `nodes` nodes serving `variants`."""
    if not body:
        return ["ModelDeployment m is gone"]
    status = body.get("status") or {}
    version = body["spec"]["model"]["version"]
    found = []
    if status.get("observedGeneration") != body["metadata"]["generation"]:
        found.append(f"observedGeneration {status.get('observedGeneration')} behind")
    if (status.get("phase"), status.get("stableVersion")) != ("Ready", version):
        found.append(f"phase {status.get('phase')} stable {status.get('stableVersion')!r} for "
                     f"spec version {version}: {status.get('message', '')[:200]}")  # fmt: skip
    counts = status.get("counts") or {}
    if (counts.get("targeted"), counts.get("succeeded")) != (nodes, nodes):
        found.append(f"counts {counts} for {nodes} nodes")
    reported = Counter({v["variant"]: v["nodes"] for v in status.get("variants") or []})
    if +reported != +variants:
        found.append(f"status variants {dict(reported)}, nodes serve {dict(variants)}")
    return found


def node_problems(
    name: str,
    key: str,
    item: dict[str, Any],
    on_disk: tuple[str, str, str],
    version: str,
    digests: Callable[[str, str], str],
) -> list[str]:
    """What differs on one node between its entry, its status, its disk and the store."""
    entry = _entry((item.get("spec") or {}).get("models"), key)
    status = _entry((item.get("status") or {}).get("models"), key)
    found = []
    if (entry.get("version"), entry.get("variant")) != on_disk[:2] or on_disk[0] != version:
        found.append(f"{name}: asked {entry.get('version')}/{entry.get('variant')}, serves "
                     f"{on_disk[0]}/{on_disk[1]} (deployment at {version})")  # fmt: skip
    reported = (status.get("phase"), status.get("activeVersion"), status.get("activeVariant"))
    if reported[0] not in SERVING or reported[1:] != on_disk[:2]:
        found.append(f"{name}: EdgeNode status says {reported}, disk serves {on_disk[:2]}")
    if on_disk[0] and on_disk[2] != digests(*on_disk[:2]):
        found.append(f"{name}: active file sha256 {on_disk[2][:12]} is not the published "
                     f"{digests(*on_disk[:2])[:12]} of {on_disk[0]}/{on_disk[1]}")  # fmt: skip
    return found


def inconsistencies(fleet: Fleet, digests: Digests) -> list[str]:
    """Every difference between disk, EdgeNode status and ModelDeployment status ([] = none)."""
    body = fleet.deployment()
    version = body.get("spec", {}).get("model", {}).get("version", "")
    items = edgenodes(fleet)
    found: list[str] = []
    variants: Counter[str] = Counter()
    for agent in fleet.agents:
        on_disk = served(agent.data, fleet.key)
        item = items.get(agent.node, {})
        found += node_problems(agent.node, fleet.key, item, on_disk, version, digests)
        variants[on_disk[1]] += bool(on_disk[1])
    return found + deployment_problems(body, len(fleet.agents), variants)


# ----- carrying out the schedule ----------------------------------------------------------------


@dataclass
class Report:
    seed: int
    fingerprint: str
    applied: Counter[str] = field(default_factory=Counter)
    noops: Counter[str] = field(default_factory=Counter)
    checkpoints: int = 0
    inconsistent: list[str] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cut_short: bool = False
    seconds: float = 0.0
    first_install: float = 0.0

    @property
    def faults(self) -> int:
        return sum(self.applied.values())

    def summary(self, replay: str) -> str:
        settle = (f"{statistics.median(self.settle):.1f} / {max(self.settle):.1f} s"
                  if self.settle else "-")  # fmt: skip
        kinds = ", ".join(f"{k} {self.applied[k]}" for k in FAULTS if self.applied[k])
        lines = [
            f"seed {self.seed} (schedule {self.fingerprint}): {self.faults} faults in "
            f"{self.seconds:.0f} s, {self.checkpoints} checkpoints, "
            f"{len(self.inconsistent)} inconsistencies",
            f"first install consistent after {self.first_install:.1f} s",
            f"faults: {kinds}",
            f"settled after healing, median / max: {settle}",
        ]
        if self.noops:
            lines.append("found nothing to break: " + ", ".join(
                f"{k} {n}" for k, n in sorted(self.noops.items())))  # fmt: skip
        if self.skipped:
            lines.append("not run here: " + "; ".join(self.skipped))
        if self.cut_short:
            lines.append("--timeout reached before the schedule ended")
        lines += [f"INCONSISTENT: {line}" for line in self.inconsistent]
        lines.append(f"replay: {replay}")
        return "\n".join(lines)


Heal = tuple[float, str, Callable[[], None]]


class Chaos:
    """Applies events to a fleet, keeps the heals due later, checks at checkpoints."""

    def __init__(self, fleet: Fleet, report: Report, settle: float) -> None:
        self.fleet = fleet
        self.report = report
        self.settle_timeout = settle
        self.digests = Digests(fleet.store, fleet.public_key)
        self.heals: list[Heal] = []
        self.started = time.monotonic()
        self.disk_full: Path | None = None

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f} s] {text}", flush=True)

    def run(self, events: list[Event], deadline: float) -> None:
        for event in events:
            if event.kind != CHECKPOINT and time.monotonic() > deadline:
                self.report.cut_short = True
                continue
            time.sleep(event.delay)
            self.heal(due_only=True)
            names = [a.node for a in self.fleet.agents]
            note = self.apply(event)
            self.say(event.describe(names, self.fleet.versions) + (f": {note}" if note else ""))

    def apply(self, event: Event) -> str:
        if event.kind == CHECKPOINT:
            return self.checkpoint()
        if event.kind == "rollout":
            return self.rollout(self.fleet.versions[event.version])
        try:
            note = ACTIONS[event.kind](self, event)
        except OSError as error:  # a file the agent moved or deleted meanwhile
            note = f"nothing done: {error}"
        if note.startswith("nothing"):
            self.report.noops[event.kind] += 1
        self.report.applied[event.kind] += 1
        return note

    def later(self, seconds: float, what: str, action: Callable[[], None]) -> None:
        self.heals.append((time.monotonic() + seconds, what, action))

    def heal(self, due_only: bool) -> None:
        now = time.monotonic()
        due = [h for h in self.heals if not due_only or h[0] <= now]
        self.heals = [h for h in self.heals if h not in due]
        for _, what, action in sorted(due, key=lambda h: h[0]):
            action()
            self.say(f"healed: {what}")

    def revive(self) -> None:
        """Start again what exited by itself (every kill is followed by a start: an exit found
        here is a crash, and counts)."""
        operator = self.fleet.operator
        if operator is None or operator.proc.poll() is not None:
            code = operator.proc.poll() if operator else None
            self.report.inconsistent.append(f"the operator exited by itself ({code})")
            self.fleet.start_operator()
        for agent in self.fleet.agents:
            if not agent.alive():
                code = agent.proc.poll() if agent.proc else None
                self.report.inconsistent.append(f"{agent.node}'s agent exited by itself ({code})")
                agent.start()

    def checkpoint(self) -> str:
        self.heal(due_only=False)
        self.revive()
        self.report.checkpoints += 1
        started, last = time.monotonic(), ["not checked"]
        shown = started
        while time.monotonic() - started < self.settle_timeout:
            last = inconsistencies(self.fleet, self.digests)
            if not last:
                self.report.settle.append(time.monotonic() - started)
                return f"consistent after {time.monotonic() - started:.1f} s"
            if time.monotonic() - shown > 20:
                shown = time.monotonic()
                self.say(f"  not yet consistent: {last}")
            time.sleep(1.0)
        self.report.inconsistent += [f"checkpoint {self.report.checkpoints}: {p}" for p in last]
        return f"{len(last)} INCONSISTENT after {self.settle_timeout:.0f} s: {last}"

    def rollout(self, version: str) -> str:
        spec = self.fleet.deployment().get("spec") or {}
        if spec.get("model", {}).get("version") == version:
            return "already the spec version"
        self.fleet.set_version(version)
        return ""


def _operator_kill(chaos: Chaos, event: Event) -> str:
    chaos.fleet.kill_operator()
    chaos.fleet.start_operator()
    return "SIGKILLed and restarted"


def _agent_kill(chaos: Chaos, event: Event) -> str:
    agent = chaos.fleet.agents[event.target]
    agent.kill(signal.SIGKILL)
    agent.start()
    return "SIGKILLed and restarted"


def _deployment_recreate(chaos: Chaos, event: Event) -> str:
    fleet = chaos.fleet
    version = fleet.deployment()["spec"]["model"]["version"]
    deleted = fleet.kubectl("delete", "mdep", "m", "-n", fleet.namespace, "--timeout=60s",
                            check=False)  # fmt: skip
    if deleted.returncode != 0:
        chaos.report.inconsistent.append(f"event {event.index}: delete hung: {deleted.stderr}")
        return f"delete did not finish: {deleted.stderr.strip()}"
    fleet.kubectl("apply", "-f", "-", input=fleet.manifest(version))
    return f"deleted and applied again at {version}"


def _relabel(chaos: Chaos, event: Event) -> str:
    node = chaos.fleet.agents[event.target].node
    chaos.fleet.label(node, on=False)
    chaos.later(event.hold, f"{node} labelled again", lambda: chaos.fleet.label(node, on=True))
    return "label removed"


def _edgenode_delete(chaos: Chaos, event: Event) -> str:
    node = chaos.fleet.agents[event.target].node
    chaos.fleet.kubectl("delete", "edgenode", node, "--timeout=60s", check=False)
    return "deleted while its agent runs"


def _active_flip(chaos: Chaos, event: Event) -> str:
    agent = chaos.fleet.agents[event.target]
    model_dir = ModelDir(agent.data, chaos.fleet.key)
    current = model_dir.link("current")
    path = model_dir.model_file(current) if current else None
    if path is None or not path.exists():
        return "nothing active"
    flip_byte(path, keep_mtime=event.flag)
    return f"flipped a byte of {current.version}/{current.variant}" if current else ""


def _kept_rot_rollback(chaos: Chaos, event: Event) -> str:
    """Rot every kept version of the node (mtime kept: only a hash sees it), then roll back: an
    abort when a rollout runs, else a rollout of a kept version. With nothing kept yet, a rollout
    to another version first (up to 30 s for the node to switch)."""
    agent = chaos.fleet.agents[event.target]
    model_dir = ModelDir(agent.data, chaos.fleet.key)
    body = chaos.fleet.deployment()
    spec_version = body["spec"]["model"]["version"]
    if not _kept(model_dir):
        other = next(v for v in chaos.fleet.versions if v != spec_version)
        chaos.fleet.set_version(other)
        fleetsim.wait_until(lambda: bool(_kept(model_dir)), 30, 0.2)
        body = chaos.fleet.deployment()
        spec_version = other
    kept = _kept(model_dir)
    if not kept:
        return "nothing kept to rot within 30 s"
    for item in kept:
        flip_byte(model_dir.model_file(item), keep_mtime=True)
    rotted = [f"{item.version}/{item.variant}" for item in kept]
    stable = (body.get("status") or {}).get("stableVersion", "")
    if stable and stable != spec_version:
        aborted = chaos.fleet.abort()
        if not aborted.startswith("refused"):  # else the rollout finished meanwhile
            return f"rotted {rotted}; {aborted}"
    back = next((i.version for i in kept if i.version != spec_version), "")
    if back:
        chaos.fleet.set_version(back)
    return f"rotted {rotted}; rolling back to {back or '(no other version kept)'}"


def _kept(model_dir: ModelDir) -> list[Installed]:
    current = model_dir.link("current")
    return sorted(i for i in model_dir.installed() if i != current and current is not None)


def _store_fault(kind: str, pattern: str) -> Callable[[Chaos, Event], str]:
    def act(chaos: Chaos, event: Event) -> str:
        fault = Fault(kind, pattern=pattern, times=None)
        chaos.fleet.proxy.fault = fault

        def heal() -> None:
            if chaos.fleet.proxy.fault is fault:
                chaos.fleet.proxy.fault = None

        chaos.later(event.hold, f"store answers again ({kind} off)", heal)
        return f"every {pattern} request answered {kind}"

    return act


def _disk_full(chaos: Chaos, event: Event) -> str:
    agent = next(a for a in chaos.fleet.agents if a.small_disk)
    if chaos.disk_full is not None:
        return "nothing: already full"
    chaos.disk_full = fill(agent.data, leave=16 << 10)

    def heal() -> None:
        if chaos.disk_full is not None:
            chaos.disk_full.unlink(missing_ok=True)
        chaos.disk_full = None

    chaos.later(event.hold, f"space back on {agent.node}", heal)
    return f"{agent.node}'s {SMALL_DISK} disk filled to 16 KiB free"


def _clock_skew(chaos: Chaos, event: Event) -> str:
    agent = chaos.fleet.agents[event.target]

    def restart(skew: int) -> None:
        agent.kill(signal.SIGTERM)
        agent.skew = skew
        agent.start()

    restart(event.skew)
    chaos.later(event.hold, f"{agent.node}'s clock right again", lambda: restart(0))
    return "agent restarted with its clock off"


def _abort(chaos: Chaos, event: Event) -> str:
    """A rollout to a version neither in the spec nor stable, stopped `hold` seconds in by
    `kubectl edge-rollout abort --rollback`; mid-rollout already (two versions), just the abort."""
    fleet = chaos.fleet
    body = fleet.deployment()
    spec_version = body["spec"]["model"]["version"]
    stable = (body.get("status") or {}).get("stableVersion", "")
    others = [v for v in fleet.versions if v not in (spec_version, stable)]
    if others:
        spec_version = others[event.version % len(others)]
        fleet.set_version(spec_version)
        time.sleep(event.hold)
    aborted = fleet.abort()
    if aborted.startswith("refused"):  # the rollout had finished: nothing was aborted
        return f"nothing to abort, the rollout to {spec_version} was done: {aborted}"
    return f"rollout to {spec_version} aborted after {event.hold:.2f} s: {aborted}"


ACTIONS: dict[str, Callable[[Chaos, Event], str]] = {
    "operator-kill": _operator_kill,
    "agent-kill": _agent_kill,
    "deployment-recreate": _deployment_recreate,
    "relabel": _relabel,
    "edgenode-delete": _edgenode_delete,
    "active-flip": _active_flip,
    "kept-rot-rollback": _kept_rot_rollback,
    "store-short": _store_fault("short", r"/chunks/"),
    "store-down": _store_fault("5xx", r"."),
    "disk-full": _disk_full,
    "clock-skew": _clock_skew,
    "abort": _abort,
}


# ----- the fleet --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    seed: int
    faults: int
    timeout: float
    settle: float = 120.0
    per_checkpoint: int = 10
    versions: tuple[str, ...] = ("1.0", "2.0", "3.0")


@contextmanager
def fleet_on(
    plane: ControlPlane, namespace: str, work: Path, settings: Settings
) -> Iterator[Fleet]:
    """Store, nginx, proxy, Nodes, agents and the operator; all stopped and deleted after."""
    kubectl = Kubectl(plane)
    fleet_id = f"chaos-{os.getpid()}-{int(time.time()) % 10**6}"
    with ExitStack() as stack:
        nginx = stack.enter_context(NginxServer(work / "nginx-root", work / "nginx"))
        public_key = publish(work / "publish", nginx.root, list(settings.versions))
        proxy = stack.enter_context(FaultyProxy(nginx.url, None))
        small = small_disk_possible()
        agents = [
            Agent(f"{fleet_id}-gpu", plane.kubeconfig, work / "gpu", gpu=True),
            Agent(f"{fleet_id}-cpu", plane.kubeconfig, work / "cpu"),
            Agent(f"{fleet_id}-disk", plane.kubeconfig, work / "disk", small_disk=small),
        ]
        fleet = Fleet(plane, kubectl, namespace, fleet_id, nginx.root, public_key, proxy,
                      list(settings.versions), agents, work)  # fmt: skip
        stack.callback(_tear_down, fleet)
        for agent in agents:
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": agent.node, "labels": {LABEL: fleet_id}}}  # fmt: skip
            kubectl("apply", "-f", "-", input=json.dumps(node))
            agent.start()
        fleet.start_operator()
        yield fleet


def _tear_down(fleet: Fleet) -> None:
    fleet.kubectl("delete", "mdep", "m", "-n", fleet.namespace, "--timeout=30s", check=False)
    fleet.kill_operator()
    for agent in fleet.agents:
        agent.close()
    names = [a.node for a in fleet.agents]
    fleet.kubectl("delete", "node", *names, "--ignore-not-found", check=False)
    fleet.kubectl("delete", "edgenode", *names, "--ignore-not-found", check=False)


def kinds_here() -> tuple[tuple[str, ...], list[str]]:
    """The fault kinds this machine can run, and why any cannot."""
    if small_disk_possible():
        return FAULTS, []
    why = "disk-full (a tmpfs in a private mount namespace needs root, unshare and nsenter)"
    return tuple(k for k in FAULTS if k != "disk-full"), [why]


def run_on(plane: ControlPlane, namespace: str, work: Path, settings: Settings) -> Report:
    """The whole run on a control plane whose CRDs are installed; the report."""
    kinds, skipped = kinds_here()
    names = ["gpu", "cpu", "disk"]
    events = make_schedule(settings.seed, settings.faults, len(names), len(settings.versions),
                           kinds, settings.per_checkpoint)  # fmt: skip
    report = Report(settings.seed, fingerprint(events), skipped=skipped)
    print(f"chaos seed {settings.seed}: {settings.faults} faults, schedule {report.fingerprint}, "
          f"kinds {', '.join(kinds)}", flush=True)  # fmt: skip
    with fleet_on(plane, namespace, work, settings) as fleet:
        fleet.kubectl("apply", "-f", "-", input=fleet.manifest(settings.versions[0]))
        chaos = Chaos(fleet, report, settings.settle)
        chaos.say(f"first install: {chaos.checkpoint()}")
        report.first_install = report.settle.pop() if report.settle else settings.settle
        report.checkpoints = 0
        started = chaos.started
        chaos.run(events, started + settings.timeout)
        report.seconds = time.monotonic() - started
    return report
