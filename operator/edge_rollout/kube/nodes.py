"""Reading Node objects: labels and allocatable memory (for nodes whose agent has not reported)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes.utils import parse_quantity

from edge_rollout.core import inputs


def node_info(labels: Mapping[str, str], status: Mapping[str, Any]) -> inputs.NodeInfo:
    """What the planner keeps of a Node object."""
    return inputs.NodeInfo(dict(labels), allocatable_memory(status))


def allocatable_memory(status: Mapping[str, Any]) -> int:
    """Bytes of `status.allocatable.memory` (e.g. `16Gi`, `16391652Ki`); 0 when absent or bad."""
    value = (status.get("allocatable") or {}).get("memory")
    if not value:
        return 0
    try:
        return int(parse_quantity(value))  # type: ignore[no-untyped-call]
    except ValueError:
        return 0
