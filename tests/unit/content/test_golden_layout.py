"""Golden blob layout: inputs and compact outputs split and joined, the size budget, old stores."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge_rollout.api import manifest as manifest_api
from edge_rollout.api.manifest import ChunkRef, GoldenRef, GoldenVectors, Tolerance
from edge_rollout.content import golden
from edge_rollout.store import codec

FP32 = Tolerance(rtol=1e-3, atol=1e-3 * 4.0 + 1e-6, min_cosine=0.9999)


def ref(data: bytes) -> ChunkRef:
    return ChunkRef(digest=codec.sha256_hex(data), size=len(data), stored=len(data))


@given(hnp.arrays(np.float32, st.integers(1, 64),
                  elements=st.floats(-4, 4, width=32, allow_nan=False)))  # fmt: skip
def test_compacted_outputs_still_pass_against_the_exact_ones(values: np.ndarray) -> None:
    small = golden.compact(values, FP32)
    assert golden.compare(values, small, FP32) is None
    assert golden.compare(small.astype(np.float32), values, FP32) is None


def test_compacting_keeps_the_check_meaningful() -> None:
    values = np.linspace(-4, 4, 1000, dtype=np.float32)
    small = golden.compact(values, FP32)
    assert small.dtype == np.float16
    off = values + np.float32(FP32.rtol * 3) * np.abs(values) + FP32.atol
    assert golden.compare(off, small, FP32) is not None  # a real error still fails
    tight = Tolerance(rtol=1e-5, atol=1e-7, min_cosine=0.9999)
    assert golden.compact(values, tight).dtype == np.float32  # fp16 would use the tolerance up


def test_split_and_join_round_trip_and_inputs_are_shared() -> None:
    feeds = [{"x": np.arange(6, dtype=np.float32).reshape(2, 3)}]
    a = [{"y": np.array([1.0, 2.0], dtype=np.float32)}]
    b = [{"y": np.array([1.5, 2.5], dtype=np.float32)}]
    ins_a, outs_a = golden.split(feeds, a, FP32)
    ins_b, outs_b = golden.split(feeds, b, FP32)
    assert codec.canonical_json(ins_a) == codec.canonical_json(ins_b)
    assert codec.canonical_json(outs_a) != codec.canonical_json(outs_b)
    blobs = {codec.sha256_hex(d): d for d in map(codec.canonical_json, (ins_a, outs_a))}
    gref = GoldenRef(inputs=ref(codec.canonical_json(ins_a)),
                     outputs=ref(codec.canonical_json(outs_a)), cases=1)  # fmt: skip
    (case,) = manifest_api.load_golden(gref, blobs).cases
    assert golden.feed(case)["x"].tolist() == feeds[0]["x"].tolist()
    assert golden.mismatches(a[0], case, FP32) == []
    assert golden.mismatches(b[0], case, FP32) != []


def test_a_store_published_before_reads_as_one_blob() -> None:
    case = manifest_api.join_golden(*golden.split([{"x": np.ones(2, np.float32)}],
                                     [{"y": np.ones(2, np.float32)}], FP32)).cases[0]  # fmt: skip
    data = codec.canonical_json(GoldenVectors(cases=[case]))
    gref = GoldenRef.model_validate({"blob": ref(data).model_dump(by_alias=True), "cases": 1})
    assert manifest_api.load_golden(gref, {ref(data).digest: data}).cases == [case]


def test_a_golden_ref_needs_one_layout() -> None:
    r = ref(b"x")
    with pytest.raises(ValueError, match="either both inputs and outputs"):
        GoldenRef(inputs=r, cases=1)
    with pytest.raises(ValueError, match="either both inputs and outputs"):
        GoldenRef(inputs=r, outputs=r, blob=r, cases=1)
    assert GoldenRef(inputs=r, outputs=r, cases=1).blobs() == [r, r]


@given(st.lists(st.integers(1, 10_000), max_size=8), st.integers(0, 40_000))
def test_cases_within_the_budget_never_zero(sizes: list[int], limit: int) -> None:
    n = golden.cases_within(sizes, limit)
    assert (n >= 1) == bool(sizes)
    assert n == 1 or sum(sizes[:n]) <= limit


def test_the_default_budget_is_5_percent_of_the_smallest_variant_or_256_kib() -> None:
    assert golden.budget(0) == 256 * 1024
    assert golden.budget(12_000_000) == 600_000
