"""Measures a variant with onnxruntime in a fresh process: peak memory, latency, outputs.

`measure()` runs this module as a child (`python -m edge_rollout.publishing.measuring`) so that peak
resident memory is that of loading and running the model alone; the parent compares outputs with
fp32. Must not build variants or write the store.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_rollout.api.release import Agreement
from edge_rollout.publishing import request
from edge_rollout.publishing.feeding import Feed
from edge_rollout.publishing.onnxmodel import ModelError

CPU = request.CPU


@dataclass(frozen=True)
class Measured:
    """What the child reported, plus the outputs per sample."""

    peak_memory_bytes: int
    latency_p50_ms: float
    latency_p95_ms: float
    outputs: list[Feed]


def _save(path: Path, feeds: list[Feed]) -> None:
    arrays: dict[str, Any] = {
        f"{i}/{k}": v for i, feed in enumerate(feeds) for k, v in feed.items()
    }
    np.savez(path, allow_pickle=False, **arrays)


def _load(path: Path) -> list[Feed]:
    with np.load(path, allow_pickle=False) as z:
        items = {k: z[k] for k in z.files}
    count = 1 + max((int(k.split("/", 1)[0]) for k in items), default=-1)
    feeds: list[Feed] = [{} for _ in range(count)]
    for key, value in items.items():
        index, name = key.split("/", 1)
        feeds[int(index)][name] = value
    return feeds


def measure(
    model: Path,
    feeds: list[Feed],
    runs: int = 30,
    timeout: float = 600,
    providers: tuple[str, ...] = CPU,
) -> Measured:
    """Load and run `model` on `providers` in a child process; `ModelError` if onnxruntime
    cannot."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        _save(inp, feeds)
        cmd = [
            sys.executable,
            "-m",
            "edge_rollout.publishing.measuring",
            str(model),
            str(inp),
            str(out),
        ]
        proc = subprocess.run(
            [*cmd, str(runs), ",".join(providers)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ModelError(f"{model.name}: onnxruntime cannot load or run it: {last}")
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        return Measured(
            peak_memory_bytes=int(report["peak"]),
            latency_p50_ms=float(report["p50"]),
            latency_p95_ms=float(report["p95"]),
            outputs=_load(out),
        )


def _cosine(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))


def agreement(reference: list[Feed], candidate: list[Feed]) -> Agreement:
    """Cosine (mean), max abs error and top-1 agreement of float outputs against fp32."""
    cosines: list[float] = []
    max_err = 0.0
    top: list[bool] = []
    for ref, cand in zip(reference, candidate, strict=True):
        for name, r in ref.items():
            if r.dtype.kind != "f":
                continue
            a, b = r.astype(np.float64), cand[name].astype(np.float64)
            cosines.append(_cosine(a.ravel(), b.ravel()))
            max_err = max(max_err, float(np.max(np.abs(a - b), initial=0.0)))
            if a.ndim >= 1 and a.shape[-1] > 1:
                top += list(np.argmax(a, -1).ravel() == np.argmax(b, -1).ravel())
    return Agreement(
        cosine=float(np.mean(cosines)) if cosines else 1.0,
        max_abs_error=max_err,
        top1=float(np.mean(top)) if top else None,
    )


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def runnable_providers(wanted: list[str]) -> tuple[str, ...]:
    """The execution providers in `wanted` that onnxruntime has on this machine, in order."""
    import onnxruntime as ort

    here = set(ort.get_available_providers())
    return tuple(p for p in wanted if p in here)


def _child(model: str, inp: str, out: str, runs: int, providers: list[str]) -> None:
    import onnxruntime as ort

    feeds = _load(Path(inp))
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
    base = _rss_kib("VmRSS")
    session = ort.InferenceSession(model, providers=providers)
    outputs = [
        dict(zip([o.name for o in session.get_outputs()], session.run(None, f), strict=True))
        for f in feeds
    ]
    times = []
    for i in range(runs):
        start = time.perf_counter()
        session.run(None, feeds[i % len(feeds)])
        times.append((time.perf_counter() - start) * 1000)
    peak = max(_rss_kib("VmHWM"), _rss_kib("VmRSS")) - base
    _save(Path(out), outputs)
    p50, p95 = np.percentile(times, [50, 95])
    print(json.dumps({"peak": peak * 1024, "p50": float(p50), "p95": float(p95)}))


if __name__ == "__main__":
    wanted = sys.argv[5].split(",") if len(sys.argv) > 5 else list(CPU)
    _child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), wanted)
