"""Golden smoke-test vectors: decode the arrays of a `GoldenVectors` blob and judge outputs.

For agents (which may not import `edge_rollout.cli`): pure numpy over verified blobs; must not
fetch, load models or run inference.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from edge_rollout.api.manifest import Array, GoldenCase, Tolerance


def decode_array(a: Array) -> npt.NDArray[np.generic]:
    """A golden array as numpy: base64 of little-endian C-order bytes, with dtype and shape."""
    raw = base64.b64decode(a.data)
    return np.frombuffer(raw, dtype=np.dtype(a.dtype).newbyteorder("<")).reshape(a.shape)


def feed(case: GoldenCase) -> dict[str, npt.NDArray[np.generic]]:
    """The inputs of a case, ready for `InferenceSession.run(None, feed)`."""
    return {name: decode_array(a) for name, a in case.inputs.items()}


def _cosine(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return 1.0 if na == nb == 0.0 else float(np.dot(a, b) / max(na * nb, 1e-300))


def mismatches(
    actual: Mapping[str, npt.NDArray[np.generic]], case: GoldenCase, tol: Tolerance
) -> list[str]:
    """Why the outputs fail the case (empty when they pass): missing, shape, values, cosine."""
    problems: list[str] = []
    for name, expected in case.outputs.items():
        want = decode_array(expected).astype(np.float64)
        if name not in actual:
            problems.append(f"output {name!r} missing")
            continue
        got = np.asarray(actual[name]).astype(np.float64)
        if got.shape != want.shape:
            problems.append(f"output {name!r} has shape {got.shape}, expected {want.shape}")
        elif not np.allclose(got, want, rtol=tol.rtol, atol=tol.atol):
            worst = float(np.max(np.abs(got - want)))
            problems.append(f"output {name!r} differs by up to {worst:.3g} (atol {tol.atol:.3g})")
        elif _cosine(got.ravel(), want.ravel()) < tol.min_cosine:
            problems.append(f"output {name!r} cosine below {tol.min_cosine}")
    return problems
