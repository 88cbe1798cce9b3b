"""`list`: every ModelDeployment in one table (phase, versions, step, nodes), pure.

`list_data` is what `-o json|yaml` prints, `list_view` the table for people; both take the
deployments already read, sorted by namespace and name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.cli import formatting as fmt
from edge_rollout.cli.statusview import PHASE_STYLE

COLUMNS = ("NAMESPACE", "NAME", "PHASE", "VERSION", "STABLE", "STEP", "NODES", "FAILED")


def _sorted(mds: Iterable[ModelDeployment]) -> list[ModelDeployment]:
    return sorted(mds, key=lambda md: (str(md.metadata.get("namespace")), _name(md)))


def _name(md: ModelDeployment) -> str:
    return str(md.metadata.get("name", ""))


def step_cell(md: ModelDeployment) -> str:
    """`1/3`, `3/3` when every step is done, `-` without steps."""
    total = len(md.spec.strategy.steps)
    return f"{min(md.status.current_step_index, total)}/{total}" if total else "-"


def list_data(mds: Iterable[ModelDeployment]) -> list[dict[str, Any]]:
    """One dict per deployment, for -o json|yaml."""
    return [
        {
            "namespace": md.metadata.get("namespace"),
            "name": _name(md),
            "phase": md.status.phase,
            "version": md.status.target_version or md.spec.model.version,
            "stableVersion": md.status.stable_version,
            "step": md.status.current_step_index,
            "steps": len(md.spec.strategy.steps),
            "nodes": md.status.counts.model_dump(by_alias=True),
        }
        for md in _sorted(mds)
    ]


def list_view(mds: Iterable[ModelDeployment]) -> RenderableType:
    """The table; `No ModelDeployments found.` as kubectl says when there are none."""
    found = _sorted(mds)
    if not found:
        return Text("No ModelDeployments found.")
    table = fmt.table(*COLUMNS)
    for md in found:
        status, counts = md.status, md.status.counts
        phase = status.phase or "Pending"
        table.add_row(
            str(md.metadata.get("namespace")),
            _name(md),
            Text(phase + (" (paused)" if md.spec.paused else ""), PHASE_STYLE.get(phase, "")),
            status.target_version or md.spec.model.version,
            status.stable_version or "-",
            step_cell(md),
            f"{counts.succeeded}/{counts.targeted}",
            str(counts.failed),
        )
    return table
