"""Bytes on the wire per update scheme on every model of the real-model corpus, general tools side
by side in one run, with the publisher's time and peak memory for the same update.

Run: `.venv/bin/python bench/delta/corpus.py [--models a,b] [--kinds head,partial] [--out DIR]`.
Each pair is measured in its own process (its peak RSS is the publish step's: A packed, then B
against A, then B rebuilt from A and checked byte for byte); the table is printed in Markdown with
each issue-12 target marked. Results are kept as JSON in DIR so a table can be reprinted
(`--table`). Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402

from bench.delta import targets  # noqa: E402
from edge_rollout.publishing import onnxmodel  # noqa: E402
from edge_rollout.testing import models  # noqa: E402
from tests.fixtures import model_pairs  # noqa: E402

KINDS = ("head", "partial", "drift", "int8", "reexport")
TITLES = {
    "head": "head fine-tune",
    "partial": "20% partial fine-tune",
    "drift": "full drift 1e-3",
    "int8": "int8 re-quantization",
    "reexport": "re-export, same weights",
    "real": "released pair",
}
TOOLS: dict[str, Callable[[Path, Path, Path], tuple[int, model_pairs.Decoder]]] = {
    "zstd -19": lambda a, b, t: model_pairs._zstd(a, b, t, patch=False),
    "zstd --patch-from": lambda a, b, t: model_pairs._zstd(a, b, t, patch=True),
    "bsdiff+zstd": model_pairs._bsdiff,
    "xdelta3 -9": model_pairs._xdelta,
    "rsync -z batch": model_pairs._rsync,
    "casync": model_pairs._casync,
}
_FLOATS = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}
_INTS = {onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8}


def weights(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Float and 8-bit tensors of 1024 values or more, wherever stored (initializers, Constant
    values, subgraphs), in file order."""
    out = []
    for _, t in onnxmodel.stored_tensors(model):
        big = int(np.prod(t.dims)) >= 1024 and t.data_location != onnx.TensorProto.EXTERNAL
        if big and t.data_type in {**_FLOATS, **_INTS}:
            out.append(t)
    return out


def _changed(t: onnx.TensorProto, scale: float, share: float, rng: np.random.Generator) -> None:
    """Floats drift by `scale` (relative) on `share` of values; 8-bit integers move by +-1 on
    `share` of values (what re-quantizing a fine-tuned weight does to most of them)."""
    a = numpy_helper.to_array(t)
    mask = rng.random(a.shape) < share
    if t.data_type in _FLOATS:
        drifted = a.astype(np.float32) * (1 + scale * rng.standard_normal(a.shape))
        new = np.where(mask, drifted, a).astype(a.dtype)
    else:
        info = np.iinfo(a.dtype)
        step = rng.choice(np.array([-1, 1]), a.shape) * mask
        new = np.clip(a.astype(np.int32) + step, info.min, info.max).astype(a.dtype)
    t.CopyFrom(numpy_helper.from_array(new, t.name))


def perturbed(model: onnx.ModelProto, kind: str, seed: int = 1) -> onnx.ModelProto:
    """A copy of `model` after one kind of update (`head`, `partial`, `drift`)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    rng = np.random.default_rng(seed)
    found = weights(out)
    picked = found[-1:] if kind == "head" else found
    scale, share = {"head": (1e-2, 1.0), "partial": (1e-2, 0.2), "drift": (1e-3, 1.0)}[kind]
    for t in picked:
        integer = t.data_type in _INTS
        _changed(t, scale, 0.1 if integer and kind == "drift" else share, rng)
    return out


def _is_int8(model: models.CorpusModel) -> bool:
    return "int8" in model.covers


def pair(model: models.CorpusModel, kind: str, tmp: Path) -> tuple[bytes, bytes] | str:
    """(A, B) for one kind of update of a corpus model; a reason string when it does not apply."""
    path = models.corpus_model_path(model, tmp)
    if isinstance(path, str):
        return path
    if model.derived:
        return "external data: the weights file is measured through the main model"
    base = onnx.load(str(path))
    a = path.read_bytes()
    if kind == "int8":
        if _is_int8(model):
            tuned = perturbed(base, "partial")
            return a, tuned.SerializeToString()
        return model_pairs.int8_of(base), model_pairs.int8_of(perturbed(base, "partial"))
    if kind == "reexport":
        return a, model_pairs.reexported(base).SerializeToString()
    return a, perturbed(base, kind).SerializeToString()


def released(index: int, tmp: Path) -> tuple[bytes, bytes] | str:
    old, new = models.RELEASED_PAIRS[index]
    paths = [models.corpus_model_path(m, tmp / m.version) for m in (old, new)]
    for found in paths:
        if isinstance(found, str):
            return found
    return Path(str(paths[0])).read_bytes(), Path(str(paths[1])).read_bytes()


def publish_step(a_path: Path, b_path: Path) -> dict[str, float]:
    """Our scheme on one pair, in this process: wire bytes, seconds to pack B against A, peak
    RSS (MiB), checked by rebuilding B from A as an agent does."""
    a, b = a_path.read_bytes(), b_path.read_bytes()
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        ours = model_pairs.ours(a, b, Path(d), deltas=True)
        seconds = time.perf_counter() - start
        ours.decode()
    return {"wire": ours.wire, "seconds": seconds, "rss_mib": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM): `ru_maxrss` would also count the parent's RSS at
    fork, which Linux carries across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    name: str, kind: str, a: bytes, b: bytes, tools: dict[str, int] | None = None
) -> dict[str, object]:
    """Every tool's bytes on the wire (same files, same run; or `tools` measured before), then
    ours in a child process."""
    row: dict[str, object] = {"model": name, "kind": kind, "size": len(b), "wire": {}}
    wire: dict[str, int] = {k: v for k, v in (tools or {}).items() if k != "edge-rollout"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        pa, pb = tmp / "a.onnx", tmp / "b.onnx"
        pa.write_bytes(a)
        pb.write_bytes(b)
        for tool, fn in TOOLS.items() if tools is None else ():
            work = tmp / tool.split()[0]
            work.mkdir(exist_ok=True)
            try:
                wire[tool], _ = fn(pa, pb, work)
            except (subprocess.CalledProcessError, FileNotFoundError) as exc:
                print(f"  {tool}: failed ({exc})", file=sys.stderr)
        cmd = [sys.executable, __file__, "--publish-step", str(pa), str(pb)]
        ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    wire["edge-rollout"] = int(ours["wire"])
    row["wire"] = wire
    row["publish_s"] = round(float(ours["seconds"]), 2)
    row["rss_mib"] = round(float(ours["rss_mib"]))
    row["rss"] = "VmHWM"
    return row


def run(
    selected: list[models.CorpusModel], kinds: list[str], out: Path, real: bool, refresh: bool
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        jobs: list[tuple[str, str, Callable[[], tuple[bytes, bytes] | str]]] = [
            (m.name, k, functools.partial(pair, m, k, tmp / "in")) for m in selected for k in kinds
        ]
        if real:
            jobs += [
                (old.name, "real", functools.partial(released, i, tmp / "rel"))
                for i, (old, _) in enumerate(models.RELEASED_PAIRS)
            ]
        for name, kind, make in jobs:
            target = out / f"{name}.{kind}.json"
            old = json.loads(target.read_text()) if target.exists() else None
            if old is not None and (not refresh or "skipped" in old or "rss" in old):
                continue
            made = make()
            if isinstance(made, str):
                target.write_text(json.dumps({"model": name, "kind": kind, "skipped": made}))
                continue
            print(f"{name} {kind} ({len(made[1]):,} B)...", file=sys.stderr, flush=True)
            tools = old["wire"] if old is not None else None
            target.write_text(json.dumps(measure(name, kind, *made, tools=tools)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="", help="comma-separated corpus names (default all)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--no-real", action="store_true", help="leave out the released pairs")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "bench-delta")
    parser.add_argument("--table", action="store_true", help="only print the table from --out")
    parser.add_argument(
        "--refresh", action="store_true", help="re-measure ours on rows kept without VmHWM"
    )
    parser.add_argument("--publish-step", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish_step:
        print(json.dumps(publish_step(*args.publish_step)))
        return 0
    if not args.table:
        names = set(filter(None, args.models.split(",")))
        chosen = [m for m in models.CORPUS if not names or m.name in names]
        kinds = args.kinds.split(",")
        run(sorted(chosen, key=_size), kinds, args.out, not args.no_real, args.refresh)
    rows = [json.loads(p.read_text()) for p in sorted(args.out.glob("*.json"))]
    print(targets.table(rows, list(TOOLS)))
    return 0


def _size(model: models.CorpusModel) -> int:
    path = models.corpus_model_path(model, Path(tempfile.gettempdir()) / "bench-delta-sizes")
    return path.stat().st_size if isinstance(path, Path) else 0


if __name__ == "__main__":
    raise SystemExit(main())
