"""Bytes on the wire per update scheme for version pairs of magika's real ONNX model.

Run: `.venv/bin/python bench/delta/run.py [MODEL.onnx]` (default: magika's model from its cached
PyPI wheel). Prints a Markdown table; figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_rollout.testing.models import magika_model_path
from tests.fixtures import model_pairs


def main() -> int:
    if len(sys.argv) > 1:
        model = Path(sys.argv[1])
    else:
        found = magika_model_path(Path(tempfile.mkdtemp()) / "model.onnx")
        if isinstance(found, str):
            print(found)
            return 1
        model = found
    results = [model_pairs.compare(n, a, b) for n, a, b in model_pairs.standard_pairs(model)]
    schemes = list(results[0].wire)
    print("| scheme | " + " | ".join(r.name for r in results) + " |")
    print("| --- |" + " ---: |" * len(results))
    for s in schemes:
        cells = [f"{r.wire[s]:,} ({r.wire[s] / r.size_b:.1%})" for r in results]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("| file size | " + " | ".join(f"{r.size_b:,}" for r in results) + " |")
    print("\nencode seconds (zstd, bsdiff, xdelta3, rsync, ours):")
    for r in results:
        print(f"- {r.name}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
