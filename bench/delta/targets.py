"""Issue 12's targets for `bench/delta/corpus.py` and the Markdown table that marks them.

Pure: takes measured rows (dicts as the bench stores them), returns text. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

OURS = "edge-rollout"
INT8_MODELS = ("minilm-int8", "t5-encoder-int8", "t5-decoder-int8")
"""Already-quantized corpus models: the float32 drift target does not apply to them."""


def target(kind: str, model: str, wire: Mapping[str, int], size: int) -> tuple[str, bool | None]:
    """(what the target is, met?) for one row; None when the target does not apply.

    >>> target("reexport", "m", {"edge-rollout": 105, "zstd --patch-from": 100}, 1000)
    ('<= 1.1x patch-from (110)', True)
    """
    ours = wire[OURS]
    others = {k: v for k, v in wire.items() if k != OURS}
    if kind in ("head", "partial"):
        best = min(others.values())
        return f"< every tool ({best:,})", ours < best
    if kind == "drift":
        if model in INT8_MODELS:
            return "n/a (int8 model)", None
        return f"<= 55% of file ({int(0.55 * size):,})", ours <= 0.55 * size
    if kind == "int8":
        bsdiff = wire["bsdiff+zstd"]
        return f"<= bsdiff+zstd ({bsdiff:,})", ours <= bsdiff
    if kind == "reexport":
        limit = int(1.1 * wire["zstd --patch-from"])
        return f"<= 1.1x patch-from ({limit:,})", ours <= limit
    limit = int(0.97 * wire["zstd -19"])
    return f"<= 0.97x zstd -19 ({limit:,})", ours <= limit


def _cell(value: int | None, size: int) -> str:
    return "-" if value is None else f"{value:,} ({value / size:.1%})"


def table(rows: Sequence[Mapping[str, Any]], tools: Sequence[str]) -> str:
    """Markdown: one line per (model, update), every tool's bytes, the target and the verdict."""
    head = ["model", "update", "file B", OURS, *tools, "target", "met", "publish s", "peak RSS MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * 2 + " ---: |" * (len(head) - 2)]
    met = total = 0
    for row in rows:
        if "skipped" in row:
            continue
        wire, size = row["wire"], row["size"]
        what, ok = target(row["kind"], row["model"], wire, size)
        mark = "n/a" if ok is None else ("yes" if ok else "**no**")
        total += ok is not None
        met += bool(ok)
        cells = [_cell(wire.get(t), size) for t in (OURS, *tools)]
        lines.append(
            f"| {row['model']} | {row['kind']} | {size:,} | " + " | ".join(cells)
            + f" | {what} | {mark} | {row['publish_s']} | {row['rss_mib']} |"
        )  # fmt: skip
    skipped = [f"{r['model']} {r['kind']}: {r['skipped']}" for r in rows if "skipped" in r]
    lines.append(f"\nTargets met: {met} of {total}.")
    lines += [f"Skipped: {s}" for s in skipped]
    return "\n".join(lines)
