"""Bytes on the wire per update scheme for version pairs of magika's real ONNX model.

Run: `.venv/bin/python bench/delta/run.py [MODEL.onnx]` (default: magika's model from its cached
PyPI wheel, plus the pair of two released magika versions). Prints Markdown tables (bytes, encode
and decode seconds); figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_rollout.testing.models import magika_model_path
from tests.fixtures import model_pairs


def pairs(argv: list[str], tmp: Path) -> list[tuple[str, bytes, bytes]] | str:
    """The generated pairs of one model, then (default model only) the released pair."""
    if argv:
        return model_pairs.standard_pairs(Path(argv[0]))
    found = magika_model_path(tmp / "model.onnx")
    if isinstance(found, str):
        return found
    real = model_pairs.real_pair(tmp)
    if isinstance(real, str):
        print(f"(no released pair: {real})")
    return model_pairs.standard_pairs(found) + ([real] if not isinstance(real, str) else [])


def table(results: list[model_pairs.PairResult]) -> None:
    schemes = list(results[0].wire)
    print("| scheme | " + " | ".join(r.name for r in results) + " |")
    print("| --- |" + " ---: |" * len(results))
    for s in schemes:
        cells = [f"{r.wire[s]:,} ({r.wire[s] / r.size_b:.1%})" for r in results]
        print(f"| {s} | " + " | ".join(cells) + " |")
    print("| file size B | " + " | ".join(f"{r.size_b:,}" for r in results) + " |")


def times(results: list[model_pairs.PairResult], title: str, attr: str) -> None:
    schemes = list(getattr(results[0], attr))
    print(f"\n{title}\n\n| pair | " + " | ".join(schemes) + " |")
    print("| --- |" + " ---: |" * len(schemes))
    for r in results:
        values = getattr(r, attr)
        print(f"| {r.name} | " + " | ".join(f"{values[s]:.2f}" for s in schemes) + " |")


def main() -> int:
    found = pairs(sys.argv[1:], Path(tempfile.mkdtemp()))
    if isinstance(found, str):
        print(found)
        return 1
    results = [model_pairs.compare(n, a, b) for n, a, b in found]
    table(results)
    times(results, "Encode seconds (publisher side)", "seconds")
    times(results, "Decode seconds (node side, rebuilding B from A)", "decode")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
