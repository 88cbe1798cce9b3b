"""A synthetic but realistic fleet for the planner benchmark: Nodes, EdgeNodes, deployments.

Deterministic (no randomness): node i's hardware, labels and entries follow from i. The fleet is
built the way a running operator would have left it: every deployment's stable version installed
on the nodes it selects (variants chosen by `selection`, memory packed by priority), and a third
of the deployments part-way through a rollout to 2.0 (some nodes Ready, some downloading, a few
failed).
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_rollout.api.edgenode import (
    Accelerator,
    DesiredModel,
    EdgeNode,
    Hardware,
    ModelStatus,
)
from edge_rollout.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from edge_rollout.api.release import Release
from edge_rollout.core import fleet as fleet_core
from edge_rollout.core import inputs, planning, selection
from edge_rollout.core import labels as node_labels
from edge_rollout.core.conditions import rfc3339

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GIB = 1 << 30
MIB = 1 << 20
REGIONS = 5
SITES = 100


@dataclass
class World:
    """Everything the operator's planner gets: Nodes, EdgeNodes, deployments, releases."""

    nodes: dict[str, inputs.NodeInfo]
    edgenodes: dict[str, EdgeNode]
    deployments: list[planning.Deployment]
    releases: dict[str, dict[str, Release]]
    """model name -> version -> release."""

    def selector_empty(self, deployment: planning.Deployment) -> bool:
        selector = deployment.spec.node_selector
        return not selector.match_labels and not selector.match_expressions

    def apply(self, plans: list[planning.Plan]) -> int:
        """Write the plans as the operator would (each changed EdgeNode becomes a new object, as
        in Kopf's index) and let the agents asked for something new report Downloading.
        Returns the number of EdgeNodes replaced."""
        changed: dict[str, dict[str, DesiredModel | None]] = {}
        for deployment, plan in zip(self.deployments, plans, strict=True):
            for node, entry in plan.desired.items():
                edgenode = self.edgenodes.get(node) or EdgeNode(metadata={"name": node})
                have = next((m for m in edgenode.spec.models if m.name == deployment.key), None)
                if have != entry:
                    changed.setdefault(node, {})[deployment.key] = entry
        for node, entries in changed.items():
            edgenode = self.edgenodes.get(node) or EdgeNode(metadata={"name": node})
            self.edgenodes[node] = _rewritten(edgenode, entries)
        self.deployments = [
            planning.Deployment(d.key, d.generation, d.spec, p.status)
            for d, p in zip(self.deployments, plans, strict=True)
        ]
        return len(changed)

    def agents_report(self, now: datetime) -> int:
        """Every agent that was downloading reports Ready (one in 25 of them Failed)."""
        count = 0
        for name, edgenode in list(self.edgenodes.items()):
            reports = edgenode.status.models
            if not any(r.phase == "Downloading" for r in reports):
                continue
            done = [
                _finished(r, now, fail=(zlib.crc32(name.encode()) + i) % 25 == 0)
                for i, r in enumerate(reports)
            ]
            status = edgenode.status.model_copy(update={"models": done})
            self.edgenodes[name] = edgenode.model_copy(update={"status": status})
            count += 1
        return count

    def heartbeat(self, share: float, seed: int) -> int:
        """Replace `share` of the EdgeNodes by fresh objects (agents' heartbeats)."""
        names = sorted(self.edgenodes)
        step = max(1, round(1 / share)) if share > 0 else 0
        touched = names[seed % step :: step] if step else []
        for name in touched:
            body = self.edgenodes[name].model_dump(by_alias=True, exclude_none=True)
            body["status"]["heartbeatTime"] = rfc3339(NOW + timedelta(seconds=seed))
            self.edgenodes[name] = EdgeNode.model_validate(body)
        return len(touched)


def _rewritten(edgenode: EdgeNode, entries: dict[str, DesiredModel | None]) -> EdgeNode:
    """The EdgeNode after server-side applies of `entries`, with Downloading reported for each
    entry that asks for something new."""
    models = [m for m in edgenode.spec.models if m.name not in entries]
    models += [e for e in entries.values() if e is not None]
    reports = {r.name: r for r in edgenode.status.models}
    for key, entry in entries.items():
        old = reports.get(key)
        if entry is None:
            reports.pop(key, None)
        elif old is None or (old.version, old.variant) != (entry.version, entry.variant):
            reports[key] = ModelStatus(
                name=key,
                phase="Downloading",
                version=entry.version,
                variant=entry.variant,
                active_version=old.active_version if old else "",
                active_variant=old.active_variant if old else "",
            )
    spec = edgenode.spec.model_copy(update={"models": sorted(models, key=lambda m: m.name)})
    status = edgenode.status.model_copy(update={"models": list(reports.values())})
    return edgenode.model_copy(update={"spec": spec, "status": status})


def _finished(report: ModelStatus, now: datetime, fail: bool) -> ModelStatus:
    if report.phase != "Downloading":
        return report
    if fail:
        error = {"reason": "TestVectorMismatch", "message": "output 0 differs"}
        return ModelStatus.model_validate(
            {**report.model_dump(by_alias=True), "phase": "Failed", "lastError": error}
        )
    return report.model_copy(
        update={
            "phase": "Ready",
            "active_version": report.version,
            "active_variant": report.variant,
            "ready_since": rfc3339(now),
        }
    )


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def kind_of(i: int) -> str:
    """50% CPU-only, 30% GPU, 20% NPU nodes."""
    return ("cpu", "cpu", "cpu", "cpu", "cpu", "gpu", "gpu", "gpu", "npu", "npu")[i % 10]


def node_labels_for(i: int) -> dict[str, str]:
    kind = kind_of(i)
    arch = "arm64" if kind == "npu" or (kind == "cpu" and i % 2) else "amd64"
    labels = {
        "edge": "true",
        "kubernetes.io/arch": arch,
        "topology.kubernetes.io/region": f"r{i % REGIONS}",
        "site": f"s{i % SITES:03d}",
        "hw": kind,
    }
    if i % 97 == 0:
        labels["ring"] = "canary"
    if kind == "gpu":
        labels["nvidia.com/gpu.present"] = "true"
    if kind == "npu":
        labels["edgerollout.dev/accelerator"] = "npu.hailo.hailo-8"
    return labels


def hardware_for(i: int) -> Hardware:
    kind = kind_of(i)
    memory = {"cpu": (2, 4, 8)[i % 3], "gpu": 16, "npu": 4}[kind] * GIB
    accelerators = {
        "cpu": [],
        "gpu": [
            Accelerator(
                accelerator_class="gpu",
                vendor="nvidia",
                model="jetson-orin" if i % 2 else "t4",
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
    labels = node_labels_for(i)
    arch = labels["kubernetes.io/arch"]
    return Hardware(
        arch=arch,
        cpu_cores=(4, 8)[i % 2],
        cpu_features=["avx2", "fma"] if arch == "amd64" else ["neon", "dotprod"],
        memory_bytes=memory,
        memory_available_bytes=memory // 2,
        disk_free_bytes=(32 + i % 7) * GIB,
        accelerators=accelerators,
        execution_providers=["CPUExecutionProvider"],
    )


def release_for(model: str, version: str, scale: int) -> Release:
    """Five variants: fp32, fp16 (CUDA), int8 (amd64 with avx2 / arm64), int8-npu (Hailo)."""

    def entry(name: str, precision: str, memory: int, latency: float, **req: Any) -> Any:
        return {
            "name": name,
            "precision": precision,
            "manifestDigest": digest(f"{model}/{version}/{name}"),
            "requirements": req,
            "measurements": {
                "fileBytes": memory // 2,
                "peakMemoryBytes": memory,
                "latencyP50Ms": latency,
                "latencyP95Ms": latency * 1.4,
                "agreement": {"cosine": 1.0 if precision == "fp32" else 0.995},
            },
        }

    mem = scale * 16 * MIB
    variants = [
        entry("fp32", "fp32", 4 * mem, 20.0),
        entry(
            "fp16",
            "fp16",
            2 * mem,
            6.0,
            acceleratorClass="gpu",
            executionProviders=["CUDAExecutionProvider"],
        ),
        entry("int8", "int8", mem, 9.0, arch=["amd64"], cpuFeatures=["avx2"]),
        entry("int8-arm", "int8", mem, 11.0, arch=["arm64"], cpuFeatures=["dotprod"]),
        entry(
            "int8-npu",
            "int8",
            mem // 2,
            2.0,
            acceleratorClass="npu",
            executionProviders=["HailoExecutionProvider"],
        ),
    ]
    return Release.model_validate({"model": model, "version": version, "variants": variants})


def selector_for(j: int) -> dict[str, Any]:
    """A tenth of the deployments select every edge node; the others a region (20% of nodes),
    a hardware class (50%, 30% or 20%) or a group of ten sites (10%)."""
    shape = j % 10
    if shape == 0:
        return {"matchLabels": {"edge": "true"}}
    if shape in (1, 2, 3):
        return {"matchLabels": {"topology.kubernetes.io/region": f"r{j % REGIONS}"}}
    if shape in (4, 5, 6):
        kind = ("cpu", "gpu", "npu")[j % 3]
        return {
            "matchLabels": {"edge": "true"},
            "matchExpressions": [{"key": "hw", "operator": "In", "values": [kind]}],
        }
    sites = [f"s{(j + k * 10) % SITES:03d}" for k in range(10)]
    return {
        "matchExpressions": [
            {"key": "site", "operator": "In", "values": sites},
            {"key": "quarantine", "operator": "DoesNotExist"},
        ],
    }


def spec_for(j: int, version: str) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {
                "name": f"model-{j:02d}",
                "version": version,
                "store": {"url": "https://models.example.com/store"},
            },
            "nodeSelector": selector_for(j),
            "priority": (j % 7) * 10,
            "selection": {
                "prefer": ("quality", "latency", "size")[j % 3],
                "memoryHeadroomPercent": 10,
            },
            "strategy": {
                "canarySelector": {"matchLabels": {"ring": "canary"}},
                "steps": [
                    {"setNodePercent": 5},
                    {"pause": {"duration": "10m"}},
                    {"setNodePercent": 25},
                    {"pause": {}},
                    {"setNodePercent": 60},
                ],
                "maxUnavailable": "5%",
                "minReadySeconds": 30,
                "progressDeadlineSeconds": 900,
            },
            "abort": {
                "criteria": [{"thresholdPercentage": 20, "minNumberOfExecutedNodes": 20}],
            },
        }
    )


def build_world(node_count: int, deployment_count: int) -> World:
    """The fleet after every deployment installed 1.0, with every third one rolling out 2.0."""
    names = [f"edge-{i:05d}" for i in range(node_count)]
    nodes = {
        name: inputs.NodeInfo(node_labels_for(i), hardware_for(i).memory_bytes or 0)
        for i, name in enumerate(names)
    }
    hardware = {name: hardware_for(i) for i, name in enumerate(names)}
    releases = {}
    specs = []
    for j in range(deployment_count):
        model = f"model-{j:02d}"
        releases[model] = {v: release_for(model, v, 1 + j % 4) for v in ("1.0", "2.0")}
        specs.append((f"fleet-{j % 4}/dep-{j:02d}", spec_for(j, "2.0" if j % 3 == 0 else "1.0")))
    entries: dict[str, list[DesiredModel]] = {n: [] for n in names}
    reports: dict[str, list[ModelStatus]] = {n: [] for n in names}
    deployments = []
    order = sorted(range(deployment_count), key=lambda j: (-specs[j][1].priority, specs[j][0]))
    for j in order:
        key, spec = specs[j]
        model_releases = releases[spec.model.name]
        status = _install(key, spec, model_releases, names, hardware, nodes, entries, reports)
        deployments.append(planning.Deployment(key, 3, spec, status))
    edgenodes = {
        name: _edgenode(i, name, hardware[name], entries[name], reports[name])
        for i, name in enumerate(names)
    }
    deployments.sort(key=lambda d: d.key)
    return World(nodes, edgenodes, deployments, releases)


def _edgenode(
    i: int, name: str, hw: Hardware, entries: list[DesiredModel], reports: list[ModelStatus]
) -> EdgeNode:
    metadata = {"name": name, "labels": node_labels_for(i), "resourceVersion": str(i)}
    spec = {"models": [e.model_dump(by_alias=True, exclude_none=True) for e in entries]}
    if i % 50 == 49:  # 2% of the nodes have no agent yet: hardware comes from their labels
        return EdgeNode.model_validate({"metadata": metadata, "spec": spec})
    heartbeat = "" if i % 50 == 48 else rfc3339(NOW - timedelta(seconds=i % 30))
    return EdgeNode.model_validate(
        {
            "metadata": metadata,
            "spec": spec,
            "status": {
                "hardware": hw.model_dump(by_alias=True, exclude_none=True),
                "heartbeatTime": heartbeat,
                "models": [r.model_dump(by_alias=True, exclude_none=True) for r in reports],
            },
        }
    )


def _install(
    key: str,
    spec: ModelDeploymentSpec,
    releases: dict[str, Release],
    names: list[str],
    hardware: dict[str, Hardware],
    nodes: dict[str, inputs.NodeInfo],
    entries: dict[str, list[DesiredModel]],
    reports: dict[str, list[ModelStatus]],
) -> ModelDeploymentStatus:
    """Entries and reports of `key` on the nodes it selects, and its status."""
    rolling = spec.model.version == "2.0"
    selected = [
        n for n in names if node_labels.selector_matches(spec.node_selector, nodes[n].labels)
    ]
    deployment = planning.Deployment(key, 3, spec, ModelDeploymentStatus())
    on_target = len(selected) * 5 // 100 if rolling else 0
    for position, name in enumerate(selected):
        version = "2.0" if position < on_target else "1.0"
        release = releases[version]
        facts = selection.NodeFacts(name, nodes[name].labels, hardware[name])
        budget = selection.memory_budget(hardware[name], spec.selection, entries[name])
        choice = selection.select_variant(facts, release, spec.selection, budget)
        if choice.variant is None:
            continue
        entry = fleet_core.desired_entry(
            deployment,
            release,
            choice,
            keep="1.0",
            requested_at=rfc3339(NOW - timedelta(minutes=5)),
            excluded=(),
        )
        entries[name].append(entry)
        reports[name].append(_report(key, entry, position, rolling and version == "2.0"))
    return _status(spec, rolling, len(selected))


def _report(key: str, entry: DesiredModel, position: int, new: bool) -> ModelStatus:
    phase = "Ready"
    if new and position % 20 == 7:
        phase = "Downloading"
    elif new and position % 50 == 13:
        phase = "Failed"
    ready = phase == "Ready"
    return ModelStatus.model_validate(
        {
            "name": key,
            "phase": phase,
            "version": entry.version,
            "variant": entry.variant,
            "activeVersion": entry.version if ready else "1.0",
            "activeVariant": entry.variant,
            "bytesFetched": 1_000_000,
            "bytesReused": 9_000_000,
            "readySince": rfc3339(NOW - timedelta(minutes=4)) if ready else "",
            "lastError": {"reason": "TestVectorMismatch", "message": "output 0 differs"}
            if phase == "Failed"
            else None,
        }
    )


def _status(spec: ModelDeploymentSpec, rolling: bool, selected: int) -> ModelDeploymentStatus:
    started = rfc3339(NOW - timedelta(minutes=15))
    if not rolling:
        return ModelDeploymentStatus.model_validate(
            {
                "observedGeneration": 3,
                "phase": "Ready",
                "stableVersion": "1.0",
                "targetVersion": "1.0",
                "currentStepIndex": len(spec.strategy.steps),
                "stepStartedAt": started,
            }
        )
    return ModelDeploymentStatus.model_validate(
        {
            "observedGeneration": 3,
            "phase": "Progressing",
            "stableVersion": "1.0",
            "targetVersion": "2.0",
            "currentStepIndex": 2,
            "stepStartedAt": started,
            "message": f"0/{selected} nodes on 2.0",
        }
    )
