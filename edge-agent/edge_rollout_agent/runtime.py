"""Proof that a model runs here: load it with onnxruntime, run golden vectors, measure it.

Picks the execution provider from the node's hardware and what onnxruntime really offers, falling
back to CPU, and holds the measurements to the health gate (`policy.judge_health`). Returns a
`Check` (ok, or a CamelCase reason and a message); it must not activate, download or report
anything, and it never raises for a bad model.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_rollout.api.manifest import GoldenVectors, Tolerance
from edge_rollout.content import golden as vectors
from edge_rollout_agent import policy

CPU = "CPUExecutionProvider"
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class Check:
    """The outcome of loading and testing one model file."""

    ok: bool
    reason: str = ""
    """CamelCase on failure: LoadFailed, InferenceFailed, TestVectorMismatch, AgreementBelowGate,
    LatencyAboveGate (see edge_rollout.api.reasons)."""
    message: str = ""
    provider: str = ""
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    memory_bytes: int = 0


def choose_providers(wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """The node's providers (best first) that onnxruntime really has, always ending with CPU.

    >>> choose_providers(["HailoExecutionProvider"], ["CPUExecutionProvider"])
    ['CPUExecutionProvider']
    """
    chosen = [p for p in wanted if p in available and p != CPU]
    return [*chosen, CPU]


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, int(np.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc/self/statm)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return pages * os.sysconf("SC_PAGE_SIZE")


def synthetic_feed(session: Any) -> dict[str, npt.NDArray[Any]]:
    """Zeros for every input (symbolic dimensions set to 1): a smoke run without vectors."""
    feed = {}
    for node in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in node.shape]
        feed[node.name] = np.zeros(shape, dtype=ORT_TYPES.get(node.type, "float32"))
    return feed


def _load(model: Path, providers: list[str]) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(model), options, providers=providers)


def _run_cases(session: Any, golden: GoldenVectors, tol: Tolerance) -> tuple[int, str]:
    """How many golden cases agree, and the first mismatch ("" when every one agrees)."""
    names = [o.name for o in session.get_outputs()]
    agreed, first = 0, ""
    for index, case in enumerate(golden.cases):
        results = dict(zip(names, session.run(None, vectors.feed(case)), strict=True))
        problems = vectors.mismatches(results, case, tol)
        if not problems:
            agreed += 1
        elif not first:
            first = f"case {index}: {problems[0]}"
    return agreed, first


def _time_runs(session: Any, feed: dict[str, npt.NDArray[Any]], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def check_model(
    model: Path,
    golden: GoldenVectors | None,
    tolerance: Tolerance,
    providers: list[str],
    runs: int = 10,
    gate: policy.Gate | None = None,
) -> Check:
    """Load `model` on `providers`, run the golden cases, time `runs` inferences, and hold
    the agreement and the p95 latency to `gate` (no gate: every golden case must agree)."""
    before = rss_bytes()
    try:
        session = _load(model, providers)
    except Exception as exc:  # onnxruntime raises many types for a bad file
        return Check(False, "LoadFailed", f"{model}: onnxruntime could not load it: {exc}")
    provider = session.get_providers()[0]
    try:
        agreed, first = _run_cases(session, golden, tolerance) if golden else (0, "")
        feed = _first_feed(golden) if golden else synthetic_feed(session)
        samples = _time_runs(session, feed, runs)
    except Exception as exc:
        return Check(False, "InferenceFailed", f"{model}: inference failed: {exc}", provider)
    p50, p95 = percentile(samples, 50), percentile(samples, 95)
    cases = len(golden.cases) if golden else 0
    measured = policy.Measured(p95, agreed, cases, first)
    failed = policy.judge_health(gate or policy.Gate(), measured)
    if failed:
        reason, message = failed
        return Check(False, reason, f"{model} on {provider}: {message}", provider, p50, p95)
    memory = max(0, rss_bytes() - before)
    return Check(True, "", "", provider, p50, p95, memory)


def _first_feed(golden: GoldenVectors) -> dict[str, npt.NDArray[Any]]:
    return vectors.feed(golden.cases[0])


def available_providers() -> list[str]:
    """What onnxruntime offers in this process."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())
