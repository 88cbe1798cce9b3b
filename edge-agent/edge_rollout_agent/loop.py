"""The agent loop: observe() → policy.decide() → act(), with a watch thread and heartbeats.

A watch thread keeps the latest EdgeNode spec (cached on disk, so a restart while the API server
is down keeps working on what it knew); the main loop acts on each desired model and patches
status on change and on heartbeat. API server or store failures never stop serving `current`.
Must not hold business rules (those are in policy, sync and reporting).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from edge_rollout.api.edgenode import (
    DesiredModel,
    EdgeNode,
    EdgeNodeSpec,
    EdgeNodeStatus,
    Hardware,
    ModelError,
    ModelStatus,
)
from edge_rollout.api.manifest import Tolerance
from edge_rollout_agent import hardware, layout, outcomes, policy, reporting, runtime, sync
from edge_rollout_agent.apphealth import check_app
from edge_rollout_agent.auditing import Auditor
from edge_rollout_agent.fetching import ChunkSource
from edge_rollout_agent.layout import ModelDir
from edge_rollout_agent.metrics import Metrics
from edge_rollout_agent.policy import Action, Failure, LocalModel, NodeConditions

AGENT_VERSION = "0.1.0"
METERED_LABEL = "edgerollout.dev/metered"
"""`"true"` on the node's EdgeNode marks its link metered (as `metered: true` in a profile)."""
log = logging.getLogger(__name__)


class NodeApi(Protocol):
    """The cluster side (kube.EdgeNodeApi)."""

    def ensure(self) -> EdgeNode: ...
    def patch_status(self, status: EdgeNodeStatus) -> None: ...
    def watch(self, resource_version: str, timeout_seconds: int = 300) -> Iterator[EdgeNode]: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Settings:
    """What `edge-rollout-agent` was started with."""

    node: str
    data_dir: Path
    profile: Path | None = None
    heartbeat: float = 30.0
    jitter: float = 0.2
    limits: policy.Limits = field(default_factory=policy.Limits)
    runs: int = 10
    concurrency: int = 4
    progress_interval: float = 2.0
    verify_interval: timedelta = timedelta(hours=6)
    """How often every kept file is hashed again in full (a stat check runs every step)."""


class Agent:
    """One node's agent; `run()` until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        api: NodeApi,
        open_source: Callable[[DesiredModel], ChunkSource],
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        ticks: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.open_source = open_source
        self.metrics = metrics or Metrics()
        self.clock = clock
        """The wall clock: the times the agent reports, update windows, defer times."""
        self.ticks = ticks or (time.monotonic if clock is utcnow else _ticks_of(clock))
        """Seconds on a clock that never jumps (time.monotonic): heartbeats and throttling are
        scheduled on it, so a wall-clock step back does not stop them (a fake `clock` given
        without `ticks` drives both, for tests)."""
        self.wall_offset = self._wall_offset()
        self.spec = load_spec(self.spec_path)
        self.models: dict[str, ModelStatus] = {}
        self.failures: dict[str, Failure] = {}
        self.hot = False
        self.deferred_until: datetime | None = None
        self.sent: EdgeNodeStatus | None = None
        self.last_patch = -math.inf
        """`ticks()` at the last status patch."""
        self.connected = False
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.hardware = Hardware()
        self.metered_label = False
        self.generation = 0
        """metadata.generation of the EdgeNode whose spec the agent acts on."""
        self.node_uid: object = None
        """metadata.uid of the EdgeNode last seen."""
        self.auditor = Auditor(clock, settings.verify_interval)

    @property
    def spec_path(self) -> Path:
        return self.settings.data_dir / "state" / "spec.json"

    # --- the watch thread -----------------------------------------------------------------

    def watch_forever(self, stop: threading.Event) -> None:
        """Keep `self.spec` current; reconnect with backoff when the API server is away."""
        delay = 1.0
        while not stop.is_set():
            try:
                node = self.api.ensure()
                self.set_node(node)
                delay = 1.0
                for seen in self.api.watch(str(node.metadata.get("resourceVersion", ""))):
                    self.set_node(seen)
                    if stop.is_set():
                        return
            except Exception as exc:  # the API server is unreachable or refused us
                self.set_connected(False)
                log.warning("API server: %s; retrying in %.0fs", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def set_node(self, node: EdgeNode) -> None:
        """What the watch saw: the spec, and the labels that describe the node's link. A new
        object (deleted and created again) gets the whole report at once."""
        uid = node.metadata.get("uid")
        if uid != self.node_uid:
            self.node_uid, self.sent = uid, None
            self.wake.set()
        generation = node.metadata.get("generation")
        self.generation = generation if isinstance(generation, int) else self.generation
        labels = node.metadata.get("labels") or {}
        self.metered_label = isinstance(labels, dict) and labels.get(METERED_LABEL) == "true"
        self.set_spec(node.spec, connected=True)

    def set_spec(self, spec: EdgeNodeSpec, connected: bool) -> None:
        with self.lock:
            changed = spec != self.spec
            self.spec = spec
        if changed:
            layout.write_atomic(self.spec_path, spec.model_dump_json(by_alias=True).encode())
        self.set_connected(connected)
        if changed:
            self.wake.set()

    def set_connected(self, connected: bool) -> None:
        if connected and not self.connected:
            self.wake.set()  # back online: report at once
        self.connected = connected
        self.metrics.connected.set(1 if connected else 0)

    # --- the main loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Act and report until `stop` is set."""
        threading.Thread(target=self.watch_forever, args=(stop,), daemon=True).start()
        while not stop.is_set():
            self.wake.clear()
            try:
                self.step()
            except Exception:
                log.exception("agent step failed; retrying")
            self.wake.wait(self.next_wait())

    def next_wait(self) -> float:
        """Seconds until the next step: the heartbeat with jitter (a change wakes it sooner)."""
        return outcomes.heartbeat_wait(self.settings.heartbeat, self.settings.jitter)

    def step(self) -> None:
        """One pass: observe, decide and act for each desired model, then report."""
        self.follow_clock_jumps()
        self.hardware = hardware.discover_with_profile(
            self.settings.data_dir, self.settings.profile
        )
        self.metrics.observe_hardware(self.hardware)
        with self.lock:
            desired = sorted(self.spec.models, key=lambda d: (-d.priority, d.name))
        self.models = {k: v for k, v in self.models.items() if k in {d.name for d in desired}}
        self.metrics.keep_models(d.name for d in desired)
        for entry in desired:
            self.reconcile(entry)
        self.remove_dropped({d.name for d in desired})
        self.report(force=self.heartbeat_due())

    def remove_dropped(self, wanted: set[str]) -> None:
        """Delete models the operator dropped from the spec (once a spec has been received)."""
        if not self.spec_path.exists():
            return
        for name in sorted(layout.deployments_on_disk(self.settings.data_dir) - wanted):
            layout.remove_deployment(self.settings.data_dir, name)
            self.failures.pop(name, None)
            log.info("%s: no longer wanted on this node; its files are removed", name)

    def conditions(self) -> NodeConditions:
        hw = self.hardware
        self.hot = policy.is_hot(hw.temperature_celsius, self.hot, self.settings.limits)
        return NodeConditions(
            time_zone=hw.time_zone,
            metered=hw.metered or self.metered_label,
            temperature_celsius=hw.temperature_celsius,
            hot=self.hot,
            deferred_until=self.deferral(),
        )

    def deferral(self) -> datetime | None:
        """The later of the defer file and a defer asked through the local endpoint."""
        path = self.settings.data_dir / "defer"
        from_file = None
        if path.exists():
            written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            from_file = policy.parse_defer(path.read_text(errors="replace"), written)
        found = [d for d in (from_file, self.deferred_until) if d is not None]
        return max(found) if found else None

    def local_state(self, entry: DesiredModel, corrupted: str = "") -> LocalModel:
        model_dir = ModelDir(self.settings.data_dir, entry.name)
        return LocalModel(
            current=model_dir.link("current"),
            previous=model_dir.link("previous"),
            kept=model_dir.installed(),
            failure=self.failures.get(entry.name),
            corrupted=corrupted,
        )

    # --- re-verifying what is on disk -------------------------------------------------------

    def audit(self, entry: DesiredModel) -> str:
        """Check every kept version of `entry` (stat every step, sha256 when due); delete kept
        versions that rotted and return why `current` no longer matches ("" when it does)."""
        damaged = self.auditor.damaged_current(ModelDir(self.settings.data_dir, entry.name))
        if damaged:
            log.warning("%s: Corrupted: %s; repairing it from the store", entry.name, damaged)
            self.update(entry.name, phase="Failed", last_error=outcomes.corrupted(damaged))
            self.report(force=False)
        return damaged

    # --- acting -----------------------------------------------------------------------------

    def reconcile(self, entry: DesiredModel, again: bool = True) -> None:
        """Decide and act for one desired model; status always names what `current` serves."""
        local = self.local_state(entry, self.audit(entry))
        self.update(entry.name, **outcomes.active(local.current))
        action = policy.decide(entry, local, self.conditions(), self.settings.limits, self.clock())
        self.metrics.actions.labels(action.kind, action.reason).inc()
        if action.kind == "Install":
            self.install(entry, action)
        elif action.kind in ("Activate", "Rollback"):
            self.switch(entry, action, again)
        else:
            self.settle(entry, action, local)

    def settle(self, entry: DesiredModel, action: Action, local: LocalModel) -> None:
        """Keep, Wait or Hold: report where the model stands without touching files."""
        prev = self.models.get(entry.name)
        changes = outcomes.settled(action, prev)
        if changes is None:
            return
        self.update(entry.name, version=entry.version, variant=entry.variant,
                    **changes, **outcomes.active(local.current))  # fmt: skip
        if action.kind == "Keep" and (prev is None or prev.latency is None):
            self.measure(entry)

    def measure(self, entry: DesiredModel) -> None:
        """Latency and memory of the active model (after a restart, or a kept version)."""
        path = ModelDir(self.settings.data_dir, entry.name).base / "current" / "model.onnx"
        check = runtime.check_model(path, None, Tolerance(), self.providers(), runs=3)
        if check.ok:
            self.update(entry.name, **_measured(check))

    def providers(self) -> list[str]:
        return runtime.choose_providers(
            self.hardware.execution_providers, runtime.available_providers()
        )

    def switch(self, entry: DesiredModel, action: Action, again: bool = True) -> None:
        """Activate a version kept on disk: no download. A kept version that fails its sha256
        is deleted and the version downloaded instead, at once."""
        try:
            item = sync.switch(entry, self.settings.data_dir)
        except sync.SyncError as exc:
            if exc.reason == "Corrupted" and again:
                log.warning("%s: Corrupted: %s", entry.name, exc)
                self.update(entry.name, phase="Pending", last_error=outcomes.corrupted(str(exc)))
                self.reconcile(entry, again=False)
                return
            self.fail(entry, exc.reason, str(exc))
            return
        self.auditor.record(ModelDir(self.settings.data_dir, entry.name), item)
        if action.kind != "Rollback" and self.app_unhealthy(entry):
            return
        self.update(
            entry.name,
            phase=outcomes.switched_phase(action),
            version=item.version,
            variant=item.variant,
            last_error=None,
            bytes_fetched=0,
            progress_percent=100,
            **outcomes.active(item),
        )
        self.measure(entry)

    def install(self, entry: DesiredModel, action: Action) -> None:
        """Download, verify, test and activate; Failed with the reason on any error."""
        self.update(
            entry.name,
            phase="Pending",
            version=entry.version,
            variant=entry.variant,
            bytes_fetched=0,
            bytes_reused=0,
            progress_percent=0,
        )
        try:
            env = self.environment(entry, action)
            result = sync.install(entry, env, action.transfer or "Full", self.settings.runs)
        except sync.PausedError as paused:
            self.pause(entry, paused.action)
            return
        except sync.SyncError as exc:
            self.fail(entry, exc.reason, str(exc))
            return
        self.failures.pop(entry.name, None)
        self.auditor.record(ModelDir(self.settings.data_dir, entry.name), result.installed)
        if self.app_unhealthy(entry):
            return
        self.metrics.bytes_fetched.inc(result.bytes_fetched)
        self.metrics.bytes_reused.inc(result.bytes_reused)
        self.update(
            entry.name,
            phase="Ready",
            last_error=None,
            progress_percent=100,
            bytes_fetched=result.bytes_fetched,
            bytes_reused=result.bytes_reused,
            **outcomes.active(result.installed),
            **_measured(result.check),
        )
        sync.collect_garbage(ModelDir(self.settings.data_dir, entry.name), entry.keep_version)

    def pause(self, entry: DesiredModel, action: Action) -> None:
        """The window closed mid-install: Pending with why; staged bytes are reused later."""
        log.info("%s %s/%s paused: %s: %s", entry.name, entry.version, entry.variant,
                 action.reason, action.message)  # fmt: skip
        self.metrics.actions.labels(action.kind, action.reason).inc()
        error = ModelError(reason=action.reason, message=action.message)
        self.update(entry.name, phase="Pending", last_error=error)

    def environment(self, entry: DesiredModel, action: Action | None = None) -> sync.Environment:
        try:
            source = self.open_source(entry)
        except Exception as exc:
            raise sync.SyncError("StoreUnreachable", f"cannot open the store: {exc}") from exc
        return sync.Environment(
            data_dir=self.settings.data_dir,
            source=source,
            providers=self.providers(),
            disk_free=self.hardware.disk_free_bytes,
            memory_available=self.hardware.memory_available_bytes,
            bandwidth=policy.parse_bandwidth(entry.delivery.max_bandwidth),
            concurrency=self.settings.concurrency,
            report=lambda p: self.on_progress(entry.name, p),
            pause=lambda: self.window_closed(entry, action),
        )

    def window_closed(self, entry: DesiredModel, action: Action | None) -> Action | None:
        """Asked by an install between chunks and before activation: its window closed?"""
        if action is None:
            return None
        return policy.pause_install(action, entry.window, self.clock(), self.hardware.time_zone)

    def app_unhealthy(self, entry: DesiredModel) -> bool:
        """Run healthGate.appCheck on the version just made current (phase Testing meanwhile);
        unhealthy: `previous` is current again and the model Failed with AppUnhealthy."""
        if entry.app_check is None:
            return False
        self.update(entry.name, phase="Testing", version=entry.version, variant=entry.variant)
        self.report(force=False)
        failed = check_app(entry, ModelDir(self.settings.data_dir, entry.name))
        if failed is None:
            return False
        restored, message = failed
        self.update(entry.name, **outcomes.active(restored))
        self.fail(entry, "AppUnhealthy", message)
        return True

    def on_progress(self, name: str, progress: sync.Progress) -> None:
        self.update(
            name,
            phase=progress.phase,
            bytes_fetched=progress.bytes_fetched,
            bytes_reused=progress.bytes_reused,
            progress_percent=progress.percent,
        )
        self.report(force=False, throttle=True)

    def fail(self, entry: DesiredModel, reason: str, message: str) -> None:
        log.warning(
            "%s %s/%s failed: %s: %s", entry.name, entry.version, entry.variant, reason, message
        )
        self.failures[entry.name] = outcomes.next_failure(
            self.failures.get(entry.name), entry.version, entry.variant, reason, self.clock()
        )
        self.metrics.failures.labels(reason).inc()
        self.update(entry.name, phase="Failed", last_error=outcomes.failed(reason, message))

    def update(self, name: str, **changes: object) -> None:
        self.models[name] = reporting.transition(
            self.models.get(name), name, self.clock(), **changes
        )
        self.metrics.observe_model(self.models[name])

    # --- reporting ------------------------------------------------------------------------

    def heartbeat_due(self) -> bool:
        return self.ticks() - self.last_patch >= self.settings.heartbeat

    def _wall_offset(self) -> datetime:
        """The wall time at ticks() == 0: it moves only when the wall clock jumps."""
        return self.clock() - timedelta(seconds=self.ticks())

    def follow_clock_jumps(self) -> None:
        """When the wall clock jumps (an NTP step, a hand set), move the times that backoff and
        re-verification are measured from by as much: waits last what they say in elapsed time
        (the policy compares them with the wall clock, which update windows need)."""
        offset = self._wall_offset()
        jump, self.wall_offset = offset - self.wall_offset, offset
        if abs(jump) < timedelta(seconds=1):
            return
        log.warning("wall clock jumped %+.0f s; backoff and re-verification keep their elapsed "
                    "time", jump.total_seconds())  # fmt: skip
        self.failures = outcomes.shifted_failures(self.failures, jump)
        self.auditor.shift(jump)

    def report(self, force: bool, throttle: bool = False) -> None:
        """Patch status when it changed (throttled while downloading) or a heartbeat is due."""
        now = self.clock()
        status = reporting.node_status(
            self.hardware,
            list(self.models.values()),
            len(self.spec.models),
            self.sent,
            now,
            AGENT_VERSION,
            self.generation,
        )
        tick = self.ticks()
        recent = tick - self.last_patch < self.settings.progress_interval
        if not force and (not reporting.differs(status, self.sent) or (throttle and recent)):
            return
        try:
            self.api.patch_status(status)
        except Exception as exc:
            self.set_connected(False)
            log.warning("cannot report status (%s); serving on and retrying", exc)
            return
        self.sent, self.last_patch = status, tick
        self.set_connected(True)
        self.metrics.heartbeat.set(now.timestamp())


def _measured(check: runtime.Check) -> dict[str, object]:
    return outcomes.measured(check.p50_ms, check.p95_ms, check.memory_bytes)


def _ticks_of(clock: Callable[[], datetime]) -> Callable[[], float]:
    return lambda: clock().timestamp()


def load_spec(path: Path) -> EdgeNodeSpec:
    """The last spec seen (cached on disk), or an empty one."""
    try:
        return EdgeNodeSpec.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return EdgeNodeSpec()
