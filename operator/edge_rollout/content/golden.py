"""Golden smoke-test vectors: their blob layout, their size budget, and the one comparison.

Split into an inputs blob (reused across variants and releases) and a compact outputs blob;
`compare` is used by the publisher, the agent and the tests. Pure numpy over verified blobs: must
not fetch, load models or run inference. NaN at the same position on both sides passes; NaN
against a number fails; infinities must match in sign.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_rollout.api.manifest import (
    Array,
    GoldenCase,
    GoldenInputs,
    GoldenOutputs,
    Tolerance,
)

BUDGET_FLOOR = 256 * 1024
"""Default golden budget, plain bytes of inputs + outputs per variant, for small models..."""
BUDGET_FRACTION = 0.05
"""...or this fraction of the smallest variant's file, whichever is larger."""
COMPACT_SHARE = 0.25
"""Outputs are stored as float16 only when rounding uses at most this share of the tolerance."""


def decode_array(a: Array) -> npt.NDArray[Any]:
    """A golden array as numpy: base64 of little-endian C-order bytes, with dtype and shape."""
    raw = base64.b64decode(a.data)
    return np.frombuffer(raw, dtype=np.dtype(a.dtype).newbyteorder("<")).reshape(a.shape)


def feed(case: GoldenCase) -> dict[str, npt.NDArray[Any]]:
    """The inputs of a case, ready for `InferenceSession.run(None, feed)`."""
    return {name: decode_array(a) for name, a in case.inputs.items()}


def _cosine(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))


def compare(actual: npt.NDArray[Any], expected: npt.NDArray[Any], tol: Tolerance) -> str | None:
    """Why `actual` is not close enough to `expected`, or None when it is.

    >>> t = Tolerance(rtol=0.0, atol=0.0, min_cosine=0.0)
    >>> compare(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), t) is None
    True
    >>> compare(np.array([0.0, 1.0]), np.array([np.nan, 1.0]), t)
    'NaN at 1 position(s) where the other side has a number'
    """
    if actual.shape != expected.shape:
        return f"shape {list(actual.shape)}, expected {list(expected.shape)}"
    a = np.asarray(actual).astype(np.float64).ravel()
    e = np.asarray(expected).astype(np.float64).ravel()
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    if (nan_a != nan_e).any():
        return f"NaN at {int((nan_a != nan_e).sum())} position(s) where the other side has a number"
    if not np.allclose(a, e, rtol=tol.rtol, atol=tol.atol, equal_nan=True):
        finite = np.isfinite(a) & np.isfinite(e)
        worst = float(np.max(np.abs(a[finite] - e[finite]), initial=0.0))
        return f"max abs error {worst:.3g} beyond rtol={tol.rtol}, atol={tol.atol}"
    finite = np.isfinite(a) & np.isfinite(e)
    cosine = _cosine(a[finite], e[finite])
    if cosine < tol.min_cosine:
        return f"cosine {cosine:.6f} below {tol.min_cosine}"
    return None


def mismatches(
    actual: Mapping[str, npt.NDArray[Any]], case: GoldenCase, tol: Tolerance
) -> list[str]:
    """Why the outputs fail the case, one line per output (empty when they pass)."""
    problems: list[str] = []
    for name, expected in case.outputs.items():
        if name not in actual:
            problems.append(f"the model has no output {name!r}")
            continue
        problem = compare(np.asarray(actual[name]), decode_array(expected), tol)
        if problem:
            problems.append(f"output {name!r}: {problem}")
    return problems


def encode_array(value: npt.NDArray[Any]) -> Array:
    """A numpy array as a golden `Array` (little-endian C-order bytes, base64)."""
    le = np.ascontiguousarray(value.astype(value.dtype.newbyteorder("<"), copy=False))
    return Array(dtype=str(value.dtype), shape=list(value.shape),
                 data=base64.b64encode(le.tobytes()).decode())  # fmt: skip


def compact(value: npt.NDArray[Any], tol: Tolerance) -> npt.NDArray[Any]:
    """`value` as float16 when that rounding stays within `COMPACT_SHARE` of the tolerance (and
    keeps every NaN, infinity and finite value as such), else unchanged.

    >>> t = Tolerance(rtol=2e-2, atol=1e-3, min_cosine=0.99)
    >>> compact(np.array([0.5, -3.0, np.nan], dtype=np.float32), t).dtype
    dtype('float16')
    >>> compact(np.array([1e6], dtype=np.float32), t).dtype
    dtype('float32')
    """
    if value.dtype.kind != "f" or value.dtype.itemsize <= 2:
        return value
    wide = value.astype(np.float64)
    half = value.astype(np.float16)
    back = half.astype(np.float64)
    if (np.isfinite(wide) != np.isfinite(back)).any() or (np.isnan(wide) != np.isnan(back)).any():
        return value
    finite = np.isfinite(wide)
    allowed = COMPACT_SHARE * (tol.atol + tol.rtol * np.abs(wide[finite]))
    if (np.abs(back[finite] - wide[finite]) > allowed).any():
        return value
    if _cosine(back[finite], wide[finite]) < 1.0 - COMPACT_SHARE * (1.0 - tol.min_cosine):
        return value
    return half


def budget(smallest_file_bytes: int) -> int:
    """The default golden budget for a release whose smallest variant file has this size.

    >>> budget(1_000_000), budget(100_000_000)
    (262144, 5000000)
    """
    return max(BUDGET_FLOOR, int(BUDGET_FRACTION * smallest_file_bytes))


def cases_within(case_bytes: Sequence[int], limit: int) -> int:
    """How many leading cases fit in `limit` bytes: never 0 (one case is kept even over it).

    >>> cases_within([100, 100, 100], 250), cases_within([900], 10), cases_within([], 10)
    (2, 1, 0)
    """
    total, n = 0, 0
    for size in case_bytes:
        total += size
        if total > limit:
            break
        n += 1
    return max(n, min(1, len(case_bytes)))


def case_bytes(inputs: Mapping[str, npt.NDArray[Any]], outputs: Mapping[str, npt.NDArray[Any]],
               tol: Tolerance) -> int:  # fmt: skip
    """Plain bytes one case takes (inputs and compacted outputs, before base64)."""
    return sum(v.nbytes for v in inputs.values()) + sum(
        compact(v, tol).nbytes for v in outputs.values()
    )


def split(
    inputs: Sequence[Mapping[str, npt.NDArray[Any]]],
    outputs: Sequence[Mapping[str, npt.NDArray[Any]]],
    tol: Tolerance,
) -> tuple[GoldenInputs, GoldenOutputs]:
    """The two blob documents for these cases; outputs compacted against `tol`."""
    feeds = [{k: encode_array(v) for k, v in i.items()} for i in inputs]
    expected = [{k: encode_array(compact(v, tol)) for k, v in o.items()} for o in outputs]
    return GoldenInputs(cases=feeds), GoldenOutputs(cases=expected)
