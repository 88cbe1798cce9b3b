"""Builders for the pure-core tests: releases, nodes and a simulated fleet of agents."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from edge_rollout.api.edgenode import (
    Accelerator,
    DesiredModel,
    Hardware,
    ModelError,
    ModelStatus,
)
from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from edge_rollout.api.release import Release, VariantEntry
from edge_rollout.core import planning, reports
from edge_rollout.core.conditions import rfc3339
from edge_rollout.core.fleet import Event

T0 = datetime(2026, 11, 1, tzinfo=UTC)
GIB = 1 << 30
MIB = 1 << 20


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def variant(
    name: str,
    precision: str = "fp32",
    *,
    memory: int = 100 * MIB,
    latency: float = 10.0,
    cosine: float = 1.0,
    accel: str = "cpu",
    providers: tuple[str, ...] = ("CPUExecutionProvider",),
    arch: tuple[str, ...] = (),
    size: int = 50 * MIB,
) -> VariantEntry:
    return VariantEntry.model_validate(
        {
            "name": name,
            "precision": precision,
            "manifestDigest": digest(name),
            "requirements": {
                "acceleratorClass": accel,
                "executionProviders": list(providers),
                "arch": list(arch),
            },
            "measurements": {
                "fileBytes": size,
                "peakMemoryBytes": memory,
                "latencyP50Ms": latency,
                "latencyP95Ms": latency * 1.5,
                "agreement": {"cosine": cosine},
            },
        }
    )


def release(version: str, *variants: VariantEntry) -> Release:
    chosen = variants or (
        variant("fp32", memory=400 * MIB, latency=20.0),
        variant(
            "fp16",
            "fp16",
            memory=250 * MIB,
            latency=12.0,
            cosine=0.9995,
            accel="gpu",
            providers=("CUDAExecutionProvider",),
        ),
        variant("int8", "int8", memory=150 * MIB, latency=8.0, cosine=0.995),
        variant(
            "int8-npu",
            "int8",
            memory=60 * MIB,
            latency=2.0,
            cosine=0.994,
            accel="npu",
            providers=("HailoExecutionProvider",),
        ),
    )
    return Release(model="m", version=version, variants=list(chosen))


def hardware(kind: str = "cpu", memory: int = 4 * GIB) -> Hardware:
    accelerators = {
        "cpu": [],
        "gpu": [
            Accelerator(
                accelerator_class="gpu",
                vendor="nvidia",
                model="t4",
                execution_provider="CUDAExecutionProvider",
            )
        ],
        "npu": [
            Accelerator(
                accelerator_class="npu",
                vendor="hailo",
                model="hailo-8",
                execution_provider="HailoExecutionProvider",
            )
        ],
    }[kind]
    return Hardware(
        arch="amd64",
        cpu_cores=4,
        memory_bytes=memory,
        accelerators=accelerators,
        execution_providers=["CPUExecutionProvider"],
    )


def spec(version: str = "2.0", **strategy: object) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "m", "version": version, "store": {"url": "http://127.0.0.1:1/s"}},
            "nodeSelector": {"matchLabels": {"edge": "true"}},
            "strategy": {
                "maxUnavailable": 2,
                "minReadySeconds": 10,
                "progressDeadlineSeconds": 300,
                **strategy,
            },
            "abort": {"criteria": [{"thresholdPercentage": 50, "minNumberOfExecutedNodes": 2}]},
        }
    )


@dataclass
class SimNode:
    """A node whose agent obeys its entry in the real agent's phases: Downloading, then Ready
    after `delay` (RolledBack when it switches back to a version it keeps on disk), or Failed
    with `fail_reason` for `broken` variants."""

    name: str
    hardware: Hardware
    labels: dict[str, str] = field(default_factory=lambda: {"edge": "true"})
    desired: DesiredModel | None = None
    reported: ModelStatus | None = None
    broken: frozenset[str] = frozenset()
    """`version/variant` pairs that fail here."""
    fail_reason: str = "LoadFailed"
    """The reason a broken variant fails with (a variant-specific one by default)."""
    held: set[tuple[str, str]] = field(default_factory=set)
    """Versions installed here (kept on disk: switching back to one is a RolledBack)."""
    asked_at: datetime | None = None
    gone: bool = False
    """Its agent died: no more steps, no more heartbeats."""
    heard: datetime | None = None
    """When its agent last reported (set by `Fleet.tick` when the fleet sends heartbeats)."""

    def as_input(self) -> planning.NodeInput:
        return planning.NodeInput(
            self.name, self.labels, self.hardware, self.desired, self.reported
        )

    def agent_step(self, now: datetime, delay: timedelta) -> None:
        self._now = now
        want = self.desired
        if want is None:
            return
        current = self.reported
        if (
            current is not None
            and current.version == want.version
            and current.variant == want.variant
            and current.phase in ("Ready", "Failed", "RolledBack")
        ):
            return
        if (want.version, want.variant) in self.held and self._switch_back(want, current, now):
            return
        if (
            self.asked_at is None
            or current is None
            or current.version != want.version
            or current.variant != want.variant
        ):
            self.asked_at = now
            self.reported = self._status(want, "Downloading", current)
            return
        if now - self.asked_at < delay:
            return
        if f"{want.version}/{want.variant}" in self.broken:
            failed = self._status(want, "Failed", current)
            self.reported = failed.model_copy(
                update={
                    "last_error": ModelError(reason=self.fail_reason, message="output 0 differs")
                }
            )
            return
        self.held.add((want.version, want.variant))
        ready = self._status(want, "Ready", current)
        self.reported = ready.model_copy(
            update={
                "active_version": want.version,
                "active_variant": want.variant,
                "ready_since": rfc3339(now),
                "bytes_fetched": 10,
                "bytes_reused": 90,
            }
        )

    def _switch_back(self, want: DesiredModel, current: ModelStatus | None, now: datetime) -> bool:
        """A kept version goes active from disk at once: RolledBack to the keepVersion or to an
        older one (as the agent's policy.decide says Rollback), else Ready."""
        if current is not None and (current.active_version, current.active_variant) == (
            want.version,
            want.variant,
        ):
            return False
        back = want.keep_version in ("", want.version)
        status = self._status(want, "RolledBack" if back else "Ready", current)
        self.reported = status.model_copy(
            update={
                "active_version": want.version,
                "active_variant": want.variant,
                "ready_since": rfc3339(now),
            }
        )
        return True

    def _status(self, want: DesiredModel, phase: str, current: ModelStatus | None) -> ModelStatus:
        active = (current.active_version, current.active_variant) if current else ("", "")
        return ModelStatus.model_validate(
            {
                "name": want.name,
                "phase": phase,
                "version": want.version,
                "variant": want.variant,
                "activeVersion": active[0],
                "activeVariant": active[1],
                "lastTransitionTime": rfc3339(getattr(self, "_now", T0)),
            }
        )


@dataclass
class Fleet:
    """A simulated fleet and one ModelDeployment, planned step by step."""

    nodes: list[SimNode]
    spec: ModelDeploymentSpec
    releases: dict[str, Release]
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    now: datetime = T0
    generation: int = 1
    max_in_flight: int = 0
    events: list[Event] = field(default_factory=list)
    heartbeats: bool = False
    """Agents send heartbeats and the planner hears them (`reports.Heard`)."""

    def plan(self) -> planning.Plan:
        deployment = planning.Deployment("ns/md", self.generation, self.spec, self.status)
        nodes = [n.as_input() for n in self.nodes]
        return planning.plan_rollout(deployment, self.releases, nodes, self.now, heard=self.heard())

    def heard(self) -> reports.Heard | None:
        if not self.heartbeats:
            return None
        return reports.Heard({n.name: n.heard for n in self.nodes if n.heard is not None})

    def apply(self, plan: planning.Plan) -> None:
        self.status = plan.status
        self.events.extend(plan.events)
        for node in self.nodes:
            if node.name in plan.desired:
                node.desired = plan.desired[node.name]
        in_flight = sum(
            1
            for n in self.nodes
            if n.desired and n.desired.version == self.status.target_version and not _serving(n)
        )
        self.max_in_flight = max(self.max_in_flight, in_flight)

    def tick(self, seconds: float = 5, delay: timedelta = timedelta(seconds=15)) -> None:
        self.now += timedelta(seconds=seconds)
        for node in self.nodes:
            if node.gone:
                continue
            node.agent_step(self.now, delay)
            if self.heartbeats:
                node.heard = self.now
        self.apply(self.plan())

    def run(self, ticks: int = 200, **kwargs: object) -> None:
        """Tick until the rollout settles: done, aborted, or paused (by spec or at an untimed
        pause step)."""
        for _ in range(ticks):
            self.tick(**kwargs)  # type: ignore[arg-type]
            if self.status.phase in ("Ready", "Degraded", "RolledBack", "Failed"):
                return
            if self.status.phase == "Paused" and self._waiting_for_approval():
                return

    def _waiting_for_approval(self) -> bool:
        steps = self.spec.strategy.steps
        index = self.status.current_step_index
        if self.spec.paused:
            return True
        pause = steps[index].pause if index < len(steps) else None
        return pause is not None and pause.duration is None

    @property
    def phase(self) -> str:
        return self.status.phase

    def change_version(self, version: str) -> None:
        self.spec = self.spec.model_copy(
            update={"model": self.spec.model.model_copy(update={"version": version})}
        )
        self.generation += 1


def _serving(node: SimNode) -> bool:
    r, d = node.reported, node.desired
    return bool(r and d and r.phase in ("Ready", "Failed") and r.version == d.version)


def fleet(count: int, *, kinds: tuple[str, ...] = ("cpu", "gpu", "npu"), **kwargs: object) -> Fleet:
    nodes = [SimNode(f"node-{i:03d}", hardware(kinds[i % len(kinds)])) for i in range(count)]
    releases = {"1.0": release("1.0"), "2.0": release("2.0"), "3.0": release("3.0")}
    return Fleet(nodes, spec("1.0", **kwargs), releases)
