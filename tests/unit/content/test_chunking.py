"""Chunking: byte-exact reassembly, size bounds, tensor alignment that survives moved offsets."""

from __future__ import annotations

import hashlib
import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_rollout.content import chunking
from edge_rollout.content.chunking import ChunkParams, TensorSpan

SMALL = ChunkParams(min_size=256, avg_bits=9, max_size=2048, min_tensor=512)


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=20_000),
    spans=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 6000)), max_size=6),
)
def test_pieces_reassemble_the_file_byte_for_byte(
    data: bytes, spans: list[tuple[int, int]]
) -> None:
    tensors = [
        TensorSpan(f"t{i}", "uint8", s, min(s + n, len(data))) for i, (s, n) in enumerate(spans)
    ]
    result = chunking.chunk_file(data, tensors, SMALL)
    assert b"".join(data[p.offset : p.offset + p.size] for p in result.pieces) == data
    assert all(
        p.digest == hashlib.sha256(data[p.offset : p.offset + p.size]).hexdigest()
        for p in result.pieces
    )
    offsets = [p.offset for p in result.pieces]
    assert offsets == sorted(offsets)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 30_000))
def test_cut_points_respect_min_and_max_sizes(seed: int, size: int) -> None:
    data = _rand(size, seed)
    cuts = chunking.cut_points(data, SMALL)
    sizes = [b - a for a, b in zip([0, *cuts], cuts, strict=False)]
    assert sum(sizes) == size
    assert all(s <= SMALL.max_size for s in sizes)
    assert all(s >= SMALL.min_size for s in sizes[:-1])


def test_cut_points_are_content_defined_after_an_insertion() -> None:
    data = _rand(200_000, 1)
    before = set(chunking.cut_points(data, SMALL))
    after = {c - 100 for c in chunking.cut_points(os.urandom(100) + data, SMALL)}
    assert len(before & after) > 0.9 * len(before)


def test_unchanged_tensor_keeps_its_chunks_when_its_offset_moves() -> None:
    weights = _rand(50_000, 7)
    old = b"header" + weights + b"tail"
    new = b"a longer header with more graph nodes" + weights + b"tail-changed"
    digests = []
    for data, start in ((old, 6), (new, 37)):
        result = chunking.chunk_file(
            data, [TensorSpan("w", "float32", start, start + len(weights))], SMALL
        )
        t = result.tensors[0]
        digests.append(
            [p.digest for p in result.pieces[t.first_chunk : t.first_chunk + t.chunk_count]]
        )
        assert t.digest == hashlib.sha256(weights).hexdigest()
    assert digests[0] == digests[1]


def test_tensor_chunks_start_and_end_exactly_at_the_tensor() -> None:
    data = _rand(10_000, 3)
    result = chunking.chunk_file(data, [TensorSpan("w", "float32", 1000, 9000)], SMALL)
    t = result.tensors[0]
    first, last = result.pieces[t.first_chunk], result.pieces[t.first_chunk + t.chunk_count - 1]
    assert (first.offset, last.offset + last.size) == (1000, 9000)


def test_small_tensors_are_chunked_with_their_surroundings() -> None:
    result = chunking.chunk_file(_rand(5000, 4), [TensorSpan("b", "float32", 100, 200)], SMALL)
    assert result.tensors == ()


def test_overlapping_or_out_of_file_spans_are_ignored() -> None:
    data = _rand(5000, 5)
    spans = [
        TensorSpan("a", "uint8", 0, 3000),
        TensorSpan("b", "uint8", 2000, 4000),
        TensorSpan("c", "uint8", 4000, 9000),
    ]
    result = chunking.chunk_file(data, spans, SMALL)
    assert [t.name for t in result.tensors] == ["a"]
    assert b"".join(data[p.offset : p.offset + p.size] for p in result.pieces) == data


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 30_000), block=st.integers(1, 5000))
def test_cut_points_hashed_block_by_block_are_those_hashed_at_once(
    seed: int, size: int, block: int
) -> None:
    data = _rand(size, seed)
    assert chunking.cut_points(data, SMALL, block) == chunking.cut_points(data, SMALL, size + 1)
