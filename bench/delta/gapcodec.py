"""The gap-delta codec against `zstd -19 --long=31 --patch-from` on the same bytes, at every
corpus model size: frame bytes, seconds, and peak RSS of encoding and of decoding.

Run: `.venv/bin/python bench/delta/gapcodec.py [--models a,b]`. Each pair is a re-export of a
corpus model (same weights, changed graph: the case a gap delta exists for, here over the whole
file) and a released pair; encode and decode each run in a child process so that their peak RSS
is their own. The zstd CLI is the yardstick only. Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import onnx  # noqa: E402

from bench.delta import corpus  # noqa: E402
from edge_rollout.store import codec  # noqa: E402
from edge_rollout.testing import models  # noqa: E402
from tests.fixtures import model_pairs  # noqa: E402


def _child(mode: str, a: Path, b: Path, frame: Path) -> dict[str, float]:
    """Encode (`b` against `a` into `frame`) or decode (check `frame` gives `b`), timed."""
    base = a.read_bytes()
    start = time.perf_counter()
    if mode == "encode":
        made = codec.compress_against(b.read_bytes(), base)
        assert made is not None
        frame.write_bytes(made)
    else:
        size = b.stat().st_size
        assert codec.decompress_against(frame.read_bytes(), base, size) == b.read_bytes()
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rss_mib": corpus.peak_rss_mib(),
    }


def _run_child(mode: str, a: Path, b: Path, frame: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", mode, str(a), str(b), str(frame)]
    return dict(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))


def compare(name: str, a: bytes, b: bytes) -> str:
    """One Markdown row: sizes and ratio to the CLI, seconds and peak RSS."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        pa, pb, frame = tmp / "a", tmp / "b", tmp / "frame"
        pa.write_bytes(a)
        pb.write_bytes(b)
        start = time.perf_counter()
        cli, _ = model_pairs._zstd(pa, pb, tmp, patch=True)
        cli_s = time.perf_counter() - start
        enc = _run_child("encode", pa, pb, frame)
        dec = _run_child("decode", pa, pb, frame)
        ours = frame.stat().st_size
    return (
        f"| {name} | {len(a):,} | {len(b):,} | {cli:,} | {ours:,} | {ours / cli:.3f} | "
        f"{cli_s:.1f} | {enc['seconds']:.1f} | {enc['rss_mib']:.0f} | {dec['seconds']:.2f} | "
        f"{dec['rss_mib']:.0f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="", help="comma-separated corpus names (default all)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *paths = args.child
        print(json.dumps(_child(mode, *(Path(p) for p in paths))))
        return 0
    names = set(filter(None, args.models.split(",")))
    print("| pair | base B | new B | zstd CLI B | ours B | ours / CLI | CLI s | encode s |"
          " encode RSS MiB | decode s | decode RSS MiB |")  # fmt: skip
    print("| --- |" + " ---: |" * 10)
    with tempfile.TemporaryDirectory() as d:
        for m in models.CORPUS:
            if (names and m.name not in names) or m.derived:
                continue
            path = models.corpus_model_path(m, Path(d))
            if isinstance(path, str):
                print(f"| {m.name} | skipped: {path} |")
                continue
            new = model_pairs.reexported(onnx.load(str(path))).SerializeToString()
            print(compare(f"{m.name} re-export", path.read_bytes(), new), flush=True)
        for old, new_m in models.RELEASED_PAIRS:
            if names and old.name not in names:
                continue
            pa, pb = (models.corpus_model_path(x, Path(d) / x.version) for x in (old, new_m))
            if isinstance(pa, Path) and isinstance(pb, Path):
                label = f"{old.name} {old.version} -> {new_m.version}"
                print(compare(label, pa.read_bytes(), pb.read_bytes()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
