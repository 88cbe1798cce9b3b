"""Per-tensor deltas: lossless round trips, small residuals for drifted weights, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.content import delta


@settings(max_examples=60, deadline=None)
@given(item_size=st.sampled_from([1, 2, 4, 8]), data=st.data())
def test_every_encoding_round_trips(item_size: int, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 64)) * item_size
    base = data.draw(st.binary(min_size=n, max_size=n))
    new = data.draw(st.binary(min_size=n, max_size=n))
    for encoding, res in delta.residuals(base, new, item_size).items():
        assert len(res) == n or encoding == "sparse-sub-planes"
        assert delta.apply_delta(base, res, item_size, encoding) == new


def test_identical_tensors_give_an_all_zero_residual() -> None:
    base = np.arange(100, dtype=np.float32).tobytes()
    assert set(delta.residual(base, base, 4, "sub-zigzag-planes")) == {0}


def test_drifted_float_weights_compress_much_better_as_a_delta() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal(100_000).astype(np.float32)
    drifted = (w * (1 + 1e-3 * rng.standard_normal(w.size))).astype(np.float32)
    z = zstandard.ZstdCompressor(level=19)
    plain = len(z.compress(drifted.tobytes()))
    best = min(
        len(z.compress(r)) for r in delta.residuals(w.tobytes(), drifted.tobytes(), 4).values()
    )
    assert best < 0.6 * plain


@pytest.mark.parametrize(
    ("base", "new", "item_size"),
    [
        pytest.param(b"abcd", b"abc", 1, id="length-differs"),
        pytest.param(b"abc", b"abd", 2, id="not-a-multiple-of-item-size"),
        pytest.param(b"ab", b"cd", 3, id="bad-item-size"),
    ],
)
def test_impossible_deltas_are_refused(base: bytes, new: bytes, item_size: int) -> None:
    with pytest.raises(delta.DeltaError):
        delta.residual(base, new, item_size, "xor-planes")


@pytest.mark.parametrize(
    ("dtype", "size"), [("float32", 4), ("float16", 2), ("int8", 1), ("int64", 8), ("bogus", 1)]
)
def test_item_size_of_dtype_names(dtype: str, size: int) -> None:
    assert delta.item_size_of(dtype) == size


def test_a_sparse_fine_tune_compresses_best_as_a_sparse_delta() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal(100_000).astype(np.float32)
    mask = rng.random(w.size) < 0.2
    tuned = np.where(mask, w * (1 + 1e-2 * rng.standard_normal(w.size)), w).astype(np.float32)
    z = zstandard.ZstdCompressor(level=19)
    sizes = {
        enc: len(z.compress(r))
        for enc, r in delta.residuals(w.tobytes(), tuned.tobytes(), 4).items()
    }
    assert min(sizes, key=lambda enc: sizes[enc]) == "sparse-sub-planes"
    assert sizes["sparse-sub-planes"] < 0.2 * len(z.compress(tuned.tobytes()))


def test_a_sparse_residual_that_does_not_match_its_bitmap_is_refused() -> None:
    base = np.arange(16, dtype=np.float32).tobytes()
    res = delta.residual(base, base[:-4] + b"abcd", 4, "sparse-sub-planes")
    with pytest.raises(delta.DeltaError, match="bitmap"):
        delta.apply_delta(base, res[:-1], 4, "sparse-sub-planes")
