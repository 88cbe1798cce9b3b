"""`status` and `nodes` views: a ModelDeployment's rollout and the fleet's hardware, pure.

Each view has a `*_data` form (plain dicts for `-o json|yaml`) and a `*_view` form (rich tables
for people). Times are relative to `now`, passed in; nothing here reads the cluster or the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from edge_rollout.api.edgenode import EdgeNode, Hardware
from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.cli import formatting as fmt
from edge_rollout.cli.explaining import Fleet, node_hardware, pair_text
from edge_rollout.core import reports, steps

PHASE_STYLE = {
    "Ready": "green",
    "Progressing": "cyan",
    "Paused": "yellow",
    "Degraded": "yellow",
    "RolledBack": "red",
    "Failed": "red",
    "Stalled": "red",
}


def step_text(md: ModelDeployment) -> str:
    """`step 1/4: pause until approved`, or `all 4 steps done`."""
    all_steps = md.spec.strategy.steps
    index = md.status.current_step_index
    if not all_steps:
        return "no steps (all nodes at once, within maxUnavailable)"
    if index >= len(all_steps):
        return f"all {len(all_steps)} steps done"
    return f"step {index}/{len(all_steps)}: {steps.describe(all_steps[index])}"


def status_data(md: ModelDeployment) -> dict[str, Any]:
    """What `status -o json|yaml` prints: the rollout in one document."""
    status = md.status
    all_steps = md.spec.strategy.steps
    index = status.current_step_index
    return {
        "name": md.metadata.get("name"),
        "namespace": md.metadata.get("namespace"),
        "model": md.spec.model.name,
        "phase": status.phase,
        "paused": md.spec.paused,
        "targetVersion": status.target_version,
        "stableVersion": status.stable_version,
        "specVersion": md.spec.model.version,
        "step": {
            "index": index,
            "count": len(all_steps),
            "description": steps.describe(all_steps[index]) if index < len(all_steps) else "",
        },
        "counts": status.counts.model_dump(mode="json"),
        "variants": {v.variant: v.nodes for v in status.variants},
        "bytes": {
            "fetched": status.bytes_fetched,
            "reused": status.bytes_reused,
            "savedPercent": fmt.saved_percent(status.bytes_fetched, status.bytes_reused),
        },
        "conditions": [c.model_dump(mode="json") for c in status.conditions],
        "worstNodes": [n.model_dump(mode="json") for n in status.worst_nodes],
        "abortReason": status.abort_reason,
        "message": status.message,
    }


def status_view(md: ModelDeployment) -> RenderableType:
    """`status NAME` for people."""
    status = md.status
    return Group(
        _headline(md),
        Text(step_text(md)),
        Text(""),
        _counts_table(md),
        Text(""),
        _bytes_line(md),
        *_section(fmt.conditions_table(status.conditions), bool(status.conditions)),
        *_section(_worst_table(md), bool(status.worst_nodes)),
        *_section(Text(f"Aborted: {status.abort_reason}", style="red"), bool(status.abort_reason)),
        *_section(Text(status.message), _message_is_new(md)),
        *_hints(md),
    )


def _headline(md: ModelDeployment) -> Text:
    status = md.status
    name = f"{md.metadata.get('namespace')}/{md.metadata.get('name')}"
    phase = status.phase or _stalled(md) or "Unknown (not planned yet)"
    line = Text.assemble(
        ("ModelDeployment ", "bold"),
        (name, "bold"),
        "  phase ",
        (phase, PHASE_STYLE.get(phase.split(" ")[0], "")),
        ("  (spec.paused)" if md.spec.paused else "", "yellow"),
    )
    versions = (
        f"\nmodel {md.spec.model.name}  target {status.target_version or md.spec.model.version}"
        f"  stable {status.stable_version or '-'}"
    )
    if status.target_version and status.target_version != md.spec.model.version:
        versions += f"  (spec asks for {md.spec.model.version}; not planned yet)"
    line.append(versions)
    return line


def _stalled(md: ModelDeployment) -> str:
    """`Stalled (NoPublicKey)` when the operator cannot plan the deployment."""
    found = next((c for c in md.status.conditions if c.type == "Stalled"), None)
    return f"Stalled ({found.reason})" if found is not None and found.status == "True" else ""


def _counts_table(md: ModelDeployment) -> RenderableType:
    counts = md.status.counts
    outcome = fmt.table("targeted", "applied", "succeeded", "failed", "pending", title="Nodes")
    numbers = (counts.targeted, counts.applied, counts.succeeded, counts.failed, counts.pending)
    outcome.add_row(*(str(n) for n in numbers))
    variants = fmt.table("variant", "nodes", title="Variants")
    for v in md.status.variants:
        variants.add_row(v.variant, str(v.nodes))
    if not md.status.variants:
        variants.add_row("-", "0")
    return Group(outcome, Text(""), variants)


def _bytes_line(md: ModelDeployment) -> Text:
    status = md.status
    saved = fmt.saved_percent(status.bytes_fetched, status.bytes_reused)
    tail = f" ({saved:.0f}% saved vs full downloads)" if saved is not None else ""
    return Text(
        f"Bytes: fetched {fmt.human_bytes(status.bytes_fetched)}, "
        f"reused {fmt.human_bytes(status.bytes_reused)}{tail}"
    )


def _worst_table(md: ModelDeployment) -> RenderableType:
    rows = fmt.table("node", "phase", "reason", "message", title="Worst nodes")
    for n in md.status.worst_nodes:
        rows.add_row(n.node, n.phase, n.reason, n.message)
    return rows


def _section(renderable: RenderableType, present: bool) -> list[RenderableType]:
    return [Text(""), renderable] if present else []


def _message_is_new(md: ModelDeployment) -> bool:
    """The summary, unless the conditions already say it."""
    message = md.status.message
    return bool(message) and all(c.message != message for c in md.status.conditions)


def _hints(md: ModelDeployment) -> list[RenderableType]:
    name = f"{md.metadata.get('name')} -n {md.metadata.get('namespace')}"
    all_steps = md.spec.strategy.steps
    index = md.status.current_step_index
    waiting = index < len(all_steps) and all_steps[index].pause is not None
    if md.spec.paused:
        return [Text(""), Text(f"Paused by spec.paused: kubectl edge-rollout resume {name}")]
    if waiting and md.status.phase in ("Progressing", "Paused"):  # Paused at a pause step
        return [Text(""), Text(f"Waiting at a pause: kubectl edge-rollout promote {name}")]
    return []


def nodes_data(fleet: Fleet, now: datetime) -> list[dict[str, Any]]:
    """What `nodes -o json|yaml` prints: one entry per node with hardware and models."""
    return [_node_data(name, fleet, now) for name in _names(fleet)]


def _node_data(name: str, fleet: Fleet, now: datetime) -> dict[str, Any]:
    edgenode = fleet.edgenodes.get(name)
    hardware = node_hardware(name, fleet)
    return {
        "name": name,
        "agent": bool(edgenode and edgenode.status.heartbeat_time),
        "hardware": hardware.model_dump(mode="json", exclude_none=True),
        "heartbeatAge": fmt.age(edgenode.status.heartbeat_time if edgenode else "", now),
        "models": [
            {"name": m.name, "phase": m.phase, "active": pair_text(m, active=True)}
            for m in (edgenode.status.models if edgenode else [])
        ],
    }


def nodes_view(fleet: Fleet, now: datetime) -> RenderableType:
    """`nodes` for people: one row per node."""
    rows = fmt.table(
        "node",
        "arch",
        "cores",
        "memory",
        "accelerators",
        "providers",
        "temp",
        "heartbeat",
        "models",
    )
    for name in _names(fleet):
        rows.add_row(*_node_row(name, fleet, now))
    return rows


def _node_row(name: str, fleet: Fleet, now: datetime) -> list[str]:
    edgenode = fleet.edgenodes.get(name)
    hw = node_hardware(name, fleet)
    temperature = hw.temperature_celsius
    heartbeat = edgenode.status.heartbeat_time if edgenode else ""
    return [
        name,
        hw.arch or "-",
        str(hw.cpu_cores or "-"),
        "-" if hw.memory_bytes is None else fmt.human_bytes(hw.memory_bytes),
        _accelerators(hw),
        ",".join(fmt.short_provider(p) for p in fmt.providers(hw)),
        f"{temperature:.0f}°C" if temperature is not None else "-",
        fmt.age(heartbeat, now) if heartbeat else "no agent (labels)",
        _models(edgenode),
    ]


def _accelerators(hw: Hardware) -> str:
    found = [
        " ".join(p for p in (a.accelerator_class, a.vendor, a.model) if p) for a in hw.accelerators
    ]
    return ", ".join(found) or "-"


def _models(edgenode: EdgeNode | None) -> str:
    problem = reports.report_problem(edgenode)
    if problem is not None:
        return f"{reports.REPORT_INVALID}: {problem}"
    if edgenode is None or not edgenode.status.models:
        return "-"
    return "\n".join(
        f"{m.name} {m.phase} {pair_text(m, active=True)}" for m in edgenode.status.models
    )


def _names(fleet: Fleet) -> Iterable[str]:
    """Nodes with an EdgeNode (an agent, or entries), by name."""
    return sorted(fleet.edgenodes)
