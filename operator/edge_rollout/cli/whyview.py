"""`why` and `plan` views: the selection on a node with a reason for every candidate, and a dry
run over the fleet. Pure: renders `explaining` values, reads nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from edge_rollout.api.edgenode import Hardware, ModelStatus
from edge_rollout.cli import formatting as fmt
from edge_rollout.cli.explaining import (
    Candidate,
    DryRun,
    Explanation,
    PlannedNode,
    candidates,
    hardware_source,
    pair_text,
)


def why_data(explanations: Sequence[Explanation]) -> list[dict[str, Any]]:
    """What `why -o json|yaml` prints: one entry per deployment on the node."""
    return [_explanation_data(e) for e in explanations]


def _explanation_data(e: Explanation) -> dict[str, Any]:
    return {
        "deployment": e.deployment,
        "node": e.node,
        "selected": e.selected,
        "version": e.version,
        "variant": e.variant,
        "reason": e.reason,
        "message": e.message,
        "candidates": [_candidate_data(c) for c in e.candidates],
        "memoryBudgetBytes": e.budget,
        "claimedBy": [c.name for c in e.claims],
        "excludedVariants": list(e.excluded),
        "hardwareSource": e.hardware_source,
        "hardware": e.hardware.model_dump(mode="json", exclude_none=True) if e.hardware else None,
        "asked": pair_text(e.desired),
        "reported": _reported_data(e.reported),
    }


def _candidate_data(c: Candidate) -> dict[str, Any]:
    return {"variant": c.variant, "chosen": c.chosen, "reason": c.reason, "message": c.message}


def _reported_data(reported: ModelStatus | None) -> dict[str, Any] | None:
    if reported is None:
        return None
    return reported.model_dump(mode="json", exclude_none=True)


def why_view(node: str, hardware: Hardware, explanations: Sequence[Explanation]) -> Group:
    """`why NODE [MD]` for people: the node, then one block per deployment."""
    parts: list[RenderableType] = [_node_line(node, hardware)]
    if not explanations:
        parts.append(Text(f"\nNo ModelDeployment selects node {node}."))
    for e in explanations:
        parts.extend([Text(""), _explanation_view(e)])
    return Group(*parts)


def _node_line(node: str, hardware: Hardware) -> Text:
    source = hardware_source(hardware)
    line = Text.assemble(("Node ", "bold"), (node, "bold"), f"  (hardware from {source})")
    line.append(f"\n{hardware_summary(hardware)}")
    return line


def hardware_summary(hw: Hardware) -> str:
    """`amd64, 4 cores, 4.0 GiB; accelerators: gpu nvidia t4; providers: CUDA, CPU`."""
    accelerators = ", ".join(
        " ".join(p for p in (a.accelerator_class, a.vendor, a.model) if p) for a in hw.accelerators
    )
    providers = ", ".join(fmt.short_provider(p) for p in fmt.providers(hw))
    memory = "memory unknown" if hw.memory_bytes is None else fmt.human_bytes(hw.memory_bytes)
    return (
        f"{hw.arch or 'arch unknown'}, {hw.cpu_cores or '?'} cores, {memory}; "
        f"accelerators: {accelerators or 'none'}; providers: {providers or 'CPU'}"
    )


def _explanation_view(e: Explanation) -> RenderableType:
    chosen = e.variant or "no variant"
    title = Text.assemble(
        ("ModelDeployment ", "bold"),
        (e.deployment, "bold"),
        f"  release {e.version}  ->  ",
        (chosen, "green" if e.variant else "red"),
        f" ({e.reason})",
    )
    if not e.selected:
        title.append(
            "\n(spec.nodeSelector does not select this node: shown as if it did)", "yellow"
        )
    lines: list[RenderableType] = [title, Text(e.message)]
    if e.candidates:
        lines.extend([_budget_line(e), _candidates_table(e.candidates)])
    lines.append(_node_side(e))
    return Group(*lines)


def _budget_line(e: Explanation) -> Text:
    budget = "unknown (node memory not reported)" if e.budget is None else fmt.human_bytes(e.budget)
    claims = ", ".join(f"{c.name} {fmt.human_bytes(c.memory_bytes)}" for c in e.claims)
    after = f" after higher-priority models ({claims})" if claims else ""
    excluded = f"; failed here before: {', '.join(e.excluded)}" if e.excluded else ""
    return Text(f"memory left for this model: {budget}{after}{excluded}")


def _candidates_table(candidates: Sequence[Candidate]) -> RenderableType:
    rows = fmt.table("variant", "result", "reason", "message")
    for c in candidates:
        result = "[green]chosen[/]" if c.chosen else "rejected"
        rows.add_row(c.variant, result, c.reason, c.message)
    return rows


def _node_side(e: Explanation) -> Text:
    asked = pair_text(e.desired)
    reported = e.reported
    if reported is None:
        return Text(f"operator asked: {asked}; the node reports nothing for it yet")
    text = (
        f"operator asked: {asked}; node reports {reported.phase} on "
        f"{pair_text(reported)}, serving {pair_text(reported, active=True)}"
    )
    if reported.bytes_fetched or reported.bytes_reused:
        text += (
            f"; fetched {fmt.human_bytes(reported.bytes_fetched)}, "
            f"reused {fmt.human_bytes(reported.bytes_reused)}"
        )
    if reported.last_error is not None:
        text += f"\nlast error: {reported.last_error.reason}: {reported.last_error.message}"
    return Text(text)


def plan_data(run: DryRun) -> dict[str, Any]:
    """What `plan -o json|yaml` prints."""
    return {
        "deployment": run.deployment,
        "version": run.version,
        "applied": False,
        "nodes": [_planned_data(p) for p in run.nodes],
        "variants": dict(_variant_counts(run)),
        "removedFrom": list(run.removed),
        "status": {
            "phase": run.status.phase,
            "currentStepIndex": run.status.current_step_index,
            "counts": run.status.counts.model_dump(mode="json"),
            "message": run.status.message,
        },
        "events": [{"type": e.type, "reason": e.reason, "message": e.message} for e in run.events],
    }


def _planned_data(p: PlannedNode) -> dict[str, Any]:
    choice = p.choice
    candidates = [] if choice is None else [_candidate_data(c) for c in _choice_rows(p)]
    return {
        "node": p.node,
        "variant": choice.variant if choice else None,
        "reason": choice.reason if choice else "",
        "message": choice.message if choice else "",
        "current": pair_text(p.current),
        "askedNow": pair_text(p.planned),
        "changes": p.changes,
        "candidates": candidates,
    }


def _choice_rows(p: PlannedNode) -> tuple[Candidate, ...]:
    return candidates(p.choice) if p.choice else ()


def _variant_counts(run: DryRun) -> Counter[str]:
    return Counter(p.choice.variant or "(none)" for p in run.nodes if p.choice is not None)


def plan_view(run: DryRun) -> RenderableType:
    """`plan -f FILE` for people: per node the variant and the other candidates' reasons, then
    once per distinct choice why it won (fleets are made of few hardware profiles)."""
    head = Text.assemble(
        ("Dry run ", "bold"),
        (run.deployment, "bold"),
        f"  release {run.version}  (nothing was applied)",
    )
    rows = fmt.table("node", "variant", "now", "asked now", "other candidates")
    for p in run.nodes:
        rows.add_row(*_planned_row(p))
    parts: list[RenderableType] = [head, Text(""), rows, Text(""), _reasons_table(run), Text("")]
    if run.removed:
        parts.append(Text(f"would remove the model from: {', '.join(run.removed)}\n"))
    parts.append(Text(f"would report: {run.status.phase}: {run.status.message}"))
    parts.extend(Text(f"would post event {e.type} {e.reason}: {e.message}") for e in run.events)
    return Group(*parts)


def _planned_row(p: PlannedNode) -> list[str]:
    choice = p.choice
    others = "; ".join(f"{c.variant}: {c.reason}" for c in _choice_rows(p) if not c.chosen)
    asked = pair_text(p.planned) + (" (new)" if p.changes else "")
    return [
        p.node,
        (choice.variant or "-") if choice else "-",
        pair_text(p.current),
        f"[bold]{asked}[/]" if p.changes else asked,
        others or "-",
    ]


def _reasons_table(run: DryRun) -> RenderableType:
    """Each distinct choice once: the variant, how many nodes get it, and why."""
    found: Counter[tuple[str, str, str]] = Counter(
        (p.choice.variant or "(none)", p.choice.reason, p.choice.message)
        for p in run.nodes
        if p.choice is not None
    )
    rows = fmt.table("variant", "nodes", "reason", "why", title="Why")
    for (variant, reason, message), count in sorted(found.items()):
        rows.add_row(variant, str(count), reason, message)
    return rows
