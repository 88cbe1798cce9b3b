"""Golden vectors: arrays survive the blob encoding; wrong outputs are reported with a reason;
the one comparison (publisher, agent, tests) treats NaN, infinities and cosine the same way."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_rollout.api.manifest import GoldenCase, Tolerance
from edge_rollout.content import golden
from edge_rollout.content.golden import encode_array as _array

EXPECTED = np.array([[0.1, 0.7, 0.2]], dtype=np.float32)
CASE = GoldenCase(
    inputs={"x": _array(np.arange(6, dtype=np.int32).reshape(2, 3))},
    outputs={"p": _array(EXPECTED)},
)
EXACT = Tolerance(rtol=0.0, atol=0.0, min_cosine=0.0)
NAN, INF = np.nan, np.inf


def test_arrays_round_trip_through_the_blob_encoding() -> None:
    np.testing.assert_array_equal(
        golden.feed(CASE)["x"], np.arange(6, dtype=np.int32).reshape(2, 3)
    )


@pytest.mark.parametrize(
    ("outputs", "problem"),
    [
        pytest.param({"p": EXPECTED + 1e-6}, None, id="within-tolerance"),
        pytest.param({"p": EXPECTED[:, ::-1]}, "max abs error", id="wrong-values"),
        pytest.param({"p": EXPECTED[0]}, "shape [3], expected [1, 3]", id="wrong-shape"),
        pytest.param({}, "has no output 'p'", id="missing-output"),
    ],
)
def test_outputs_are_judged_against_the_golden_case(outputs, problem: str | None) -> None:
    found = golden.mismatches(outputs, CASE, Tolerance(rtol=1e-3, atol=1e-4))
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1
        assert problem in found[0]


@pytest.mark.parametrize(
    ("actual", "expected", "passes"),
    [
        pytest.param([NAN, 1.0], [NAN, 1.0], True, id="nan-at-the-same-position-passes"),
        pytest.param([0.0, 1.0], [NAN, 1.0], False, id="number-where-nan-expected-fails"),
        pytest.param([NAN, 1.0], [0.0, 1.0], False, id="nan-where-number-expected-fails"),
        pytest.param([NAN, 1.0], [1.0, NAN], False, id="nan-at-other-positions-fails"),
        pytest.param([NAN, NAN], [NAN, NAN], True, id="all-nan-both-sides-passes"),
        pytest.param([INF, -INF, 2.0], [INF, -INF, 2.0], True, id="same-infinities-pass"),
        pytest.param([INF, 1.0], [-INF, 1.0], False, id="opposite-infinities-fail"),
        pytest.param([INF, 1.0], [1e30, 1.0], False, id="infinity-against-a-number-fails"),
    ],
)
def test_nan_and_infinity_semantics(actual: list[float], expected: list[float], passes: bool):
    found = golden.compare(np.array(actual), np.array(expected), EXACT)
    assert (found is None) == passes, found


def test_cosine_is_checked_on_the_finite_values() -> None:
    tol = Tolerance(rtol=10.0, atol=10.0, min_cosine=0.99)
    assert golden.compare(np.array([1.0, 0.0]), np.array([0.0, 1.0]), tol) is not None
    assert golden.compare(np.array([NAN, 1.0, 2.0]), np.array([NAN, 1.0, 2.0]), tol) is None


@given(hnp.arrays(np.float32, st.integers(1, 20), elements=st.floats(width=32, allow_nan=True)))
def test_any_array_matches_itself_and_fails_with_one_nan_added(a: np.ndarray) -> None:
    assert golden.compare(a, a.copy(), EXACT) is None
    finite = np.flatnonzero(~np.isnan(a))
    if finite.size:
        b = a.copy()
        b[finite[0]] = np.nan
        assert golden.compare(b, a, EXACT) is not None
