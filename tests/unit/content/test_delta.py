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
        assert len(res) == n or encoding.startswith("sparse-")
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
    assert min(sizes, key=lambda enc: sizes[enc]).startswith("sparse-")
    assert min(sizes.values()) < 0.2 * len(z.compress(tuned.tobytes()))


def test_a_sparse_residual_that_does_not_match_its_bitmap_is_refused() -> None:
    base = np.arange(16, dtype=np.float32).tobytes()
    res = delta.residual(base, base[:-4] + b"abcd", 4, "sparse-sub-planes")
    with pytest.raises(delta.DeltaError, match="bitmap"):
        delta.apply_delta(base, res[:-1], 4, "sparse-sub-planes")


def _requantized(seed: int, share: float) -> tuple[bytes, bytes]:
    """int8 weights and the same weights re-quantized after a fine-tune: `share` of the values
    move by one step, either way."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, 200_000).astype(np.int8)
    step = rng.choice(np.array([-1, 1]), w.size) * (rng.random(w.size) < share)
    return w.tobytes(), np.clip(w.astype(np.int16) + step, -128, 127).astype(np.int8).tobytes()


@pytest.mark.parametrize("share", [0.002, 0.02, 0.1])
def test_a_requantized_int8_tensor_compresses_best_as_runs(share: float) -> None:
    base, new = _requantized(2, share)
    z = zstandard.ZstdCompressor(level=19)
    sizes = {enc: len(z.compress(r)) for enc, r in delta.residuals(base, new, 1).items()}
    assert min(sizes, key=lambda enc: sizes[enc]) == "sparse-run-planes"
    # one step either way at a random place carries H(share) + share bits per value; a frame's
    # header and tables cost ~100 bytes more
    entropy = -share * np.log2(share) - (1 - share) * np.log2(1 - share) + share
    assert sizes["sparse-run-planes"] < 1.1 * entropy * len(new) / 8 + 128


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        pytest.param(slice(0, 10), "header", id="short-header"),
        pytest.param(slice(0, -1), "header", id="values-missing"),
        pytest.param(slice(0, 200), "header says", id="runs-cut-short"),
        pytest.param(slice(0, None), "past the end", id="beyond-the-tensor"),
    ],
)
def test_a_run_length_residual_that_does_not_fit_is_refused(cut: slice, match: str) -> None:
    base, new = _requantized(3, 0.05)
    res = delta.residual(base, new, 1, "sparse-run-planes")
    target = base[:-1000] if match == "past the end" else base
    with pytest.raises(delta.DeltaError, match=match):
        delta.apply_delta(target, res[cut], 1, "sparse-run-planes")


@pytest.mark.parametrize(("share", "runs"), [(0.02, True), (0.2, True), (0.3, False), (0.6, False)])
def test_runs_are_tried_only_on_tensors_with_few_changed_values(share: float, runs: bool) -> None:
    base, new = _requantized(4, share)
    changed = np.count_nonzero(np.frombuffer(base, np.int8) != np.frombuffer(new, np.int8))
    assert (changed <= delta.RUNS_UP_TO * len(base)) == runs
    assert ("sparse-run-planes" in delta.candidates(base, new, 1)) == runs
    assert set(delta.candidates(base, new, 1)) >= set(delta.ENCODINGS) - {"sparse-run-planes"}
