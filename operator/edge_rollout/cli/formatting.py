"""Small pure formatters shared by the plugin's views: sizes, ages, providers, output encodings.

No I/O: `render_text` renders to a string (tests, pipes); printing is the caller's business.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import yaml
from rich.console import Console, RenderableType
from rich.table import Table

from edge_rollout.api.common import Condition
from edge_rollout.api.edgenode import Hardware

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
WIDE = 160
"""Width for output that is not a terminal, so pipes and logs keep one row per line."""


def human_bytes(value: int) -> str:
    """`1.5 GiB`, `150 MiB`, `512 B`.

    >>> human_bytes(3 << 29)
    '1.5 GiB'
    """
    size = float(value)
    for unit in UNITS:
        if abs(size) < 1024 or unit == UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" or size >= 100 else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def saved_percent(fetched: int, reused: int) -> float | None:
    """Share of the bytes a full download would have needed that came from files on the node."""
    total = fetched + reused
    return None if total == 0 else 100.0 * reused / total


def age(timestamp: str, now: datetime) -> str:
    """`42s`, `3m`, `5h`, `2d` since an RFC 3339 time; `-` when unknown."""
    if not timestamp:
        return "-"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
        seconds = max(0, int((now - then).total_seconds()))
    except (ValueError, TypeError, OverflowError):  # not a time, or one without a zone
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def short_provider(name: str) -> str:
    """`CUDAExecutionProvider` -> `CUDA`."""
    return name.removesuffix("ExecutionProvider") or name


def providers(hardware: Hardware) -> list[str]:
    """Execution providers the node offers, as selection counts them: the reported ones, the
    accelerators' and the CPU's, best first."""
    found = [a.execution_provider for a in hardware.accelerators if a.execution_provider]
    return list(dict.fromkeys([*hardware.execution_providers, *found, "CPUExecutionProvider"]))


def table(*columns: str, title: str | None = None) -> Table:
    """A plain table in the style kubectl users read: header row, no borders."""
    out = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
    for column in columns:
        out.add_column(column.upper(), overflow="fold")
    return out


def conditions_table(conditions: Iterable[Condition]) -> Table:
    rows = table("type", "status", "reason", "message", title="Conditions")
    for c in conditions:
        style = _condition_style(c)
        rows.add_row(c.type, f"[{style}]{c.status}[/]", c.reason, c.message)
    return rows


def _condition_style(condition: Condition) -> str:
    bad = condition.type in ("Degraded", "Stalled")
    good = (condition.status == "True") != bad
    return "green" if good else ("red" if condition.status == "True" else "yellow")


def render_text(renderable: RenderableType, width: int = WIDE) -> str:
    """The renderable as plain text (no colour), as a pipe would receive it."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def encode(data: Any, output: str) -> str:
    """`-o json` or `-o yaml` for scripts."""
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
