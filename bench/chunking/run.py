"""Chunk sizes by measurement: our update bytes per pair for a few min/average/max chunk sizes.

Run: `.venv/bin/python bench/chunking/run.py [MODEL.onnx]` (default: magika's model and the
released magika pair, as bench/delta). Prints a Markdown table; the chosen sizes and the figures
are in docs/store-format.md and docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.delta.run import pairs
from edge_rollout.content import chunking, diffing
from edge_rollout.store import codec
from tests.fixtures import model_pairs

KIB = 1024
GRID = [
    chunking.ChunkParams(min_size=4 * KIB, avg_bits=14, max_size=64 * KIB),
    chunking.ChunkParams(min_size=8 * KIB, avg_bits=15, max_size=128 * KIB),
    chunking.ChunkParams(min_size=16 * KIB, avg_bits=16, max_size=256 * KIB),
    chunking.ChunkParams(min_size=32 * KIB, avg_bits=17, max_size=512 * KIB),
    chunking.ChunkParams(min_size=64 * KIB, avg_bits=18, max_size=1024 * KIB),
]


def label(p: chunking.ChunkParams) -> str:
    return f"{p.min_size // KIB}/{(1 << p.avg_bits) // KIB}/{p.max_size // KIB} KiB"


def measure(a: bytes, b: bytes, params: chunking.ChunkParams, tmp: Path) -> dict[str, int]:
    """Update bytes with and without deltas, first-install bytes, manifest sizes, chunk count."""
    o = model_pairs.ours(a, b, tmp, True, params)
    full_manifest = len(codec.compress(codec.canonical_json(o.wanted)))
    chunks = {c.digest: c for c in o.wanted.files[0].chunks}
    plain = diffing.diff_manifests(o.held, o.wanted, deltas=False)
    return {
        "update": o.wire,
        "chunks only": plain.fetch_bytes + full_manifest,
        "first install": sum(c.stored for c in chunks.values()) + full_manifest,
        "manifest": full_manifest,
        "manifest delta": o.manifest_bytes,
        "chunks": len(o.wanted.files[0].chunks),
    }


def main() -> int:
    tmp = Path(tempfile.mkdtemp())
    found = pairs(sys.argv[1:], tmp)
    if isinstance(found, str):
        print(found)
        return 1
    print("| chunk min/avg/max | " + " | ".join(n for n, _, _ in found)
          + " | first install (fp32) | manifest (chunks) |")  # fmt: skip
    print("| --- |" + " ---: |" * (len(found) + 2))
    for i, params in enumerate(GRID):
        rows = [measure(a, b, params, tmp / f"{i}-{j}") for j, (_, a, b) in enumerate(found)]
        cells = [f"{r['update']:,} / {r['chunks only']:,}" for r in rows]
        first = rows[0]
        tail = f"{first['first install']:,} | {first['manifest']:,} ({first['chunks']})"
        print(f"| {label(params)} | " + " | ".join(cells) + f" | {tail} |")
    print("\ncells: update bytes with deltas / chunks only (both with B's manifest)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
