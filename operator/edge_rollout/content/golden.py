"""Golden smoke-test vectors: decode the arrays of a `GoldenVectors` blob and judge outputs.

The one comparison used by the publisher, the agent and the tests: pure numpy over verified
blobs; must not fetch, load models or run inference. NaN at the same position on both sides
passes; NaN against a number fails; infinities must match in sign.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_rollout.api.manifest import Array, GoldenCase, Tolerance


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
