"""Golden vectors: arrays survive the blob encoding; wrong outputs are reported with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from edge_rollout.api.manifest import GoldenCase, Tolerance
from edge_rollout.cli.packing import _array
from edge_rollout.store import golden

EXPECTED = np.array([[0.1, 0.7, 0.2]], dtype=np.float32)
CASE = GoldenCase(
    inputs={"x": _array(np.arange(6, dtype=np.int32).reshape(2, 3))},
    outputs={"p": _array(EXPECTED)},
)


def test_arrays_round_trip_through_the_blob_encoding() -> None:
    np.testing.assert_array_equal(
        golden.feed(CASE)["x"], np.arange(6, dtype=np.int32).reshape(2, 3)
    )


@pytest.mark.parametrize(
    ("outputs", "problem"),
    [
        pytest.param({"p": EXPECTED + 1e-6}, None, id="within-tolerance"),
        pytest.param({"p": EXPECTED[:, ::-1]}, "differs by up to", id="wrong-values"),
        pytest.param({"p": EXPECTED[0]}, "has shape", id="wrong-shape"),
        pytest.param({}, "missing", id="missing-output"),
    ],
)
def test_outputs_are_judged_against_the_golden_case(outputs, problem: str | None) -> None:
    found = golden.mismatches(outputs, CASE, Tolerance(rtol=1e-3, atol=1e-4))
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1
        assert problem in found[0]
