"""Chunk and tensor placement in a file's bytes: slices, tensors by name, gap bytes round trip."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from edge_rollout.api.manifest import ChunkRef, FileEntry, TensorRange
from edge_rollout.content import placement


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _entry(data: bytes, sizes: list[int], tensor: tuple[int, int] | None) -> FileEntry:
    chunks, offset = [], 0
    for size in sizes:
        piece = data[offset : offset + size]
        chunks.append(ChunkRef(digest=_sha(piece), size=size, stored=size))
        offset += size
    tensors = []
    if tensor is not None:
        first, count = tensor
        start = sum(sizes[:first])
        body = data[start : start + sum(sizes[first : first + count])]
        tensors.append(
            TensorRange(name="w", dtype="float32", first_chunk=first, chunk_count=count,
                        digest=_sha(body))
        )  # fmt: skip
    return FileEntry(path="model.onnx", size=len(data), digest=_sha(data), chunks=chunks,
                     tensors=tensors)  # fmt: skip


cases = st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=8).flatmap(
    lambda pieces: st.tuples(
        st.just(pieces),
        st.none()
        | st.integers(0, len(pieces) - 1).flatmap(
            lambda first: st.tuples(st.just(first), st.integers(1, len(pieces) - first))
        ),
    )
)


@given(cases)
def test_gap_bytes_and_tensors_partition_the_file_and_gaps_split_back(case) -> None:
    pieces, tensor = case
    data = b"".join(pieces)
    entry = _entry(data, [len(p) for p in pieces], tensor)
    tensors = placement.tensors_by_name(entry, data)
    gaps = placement.gap_bytes(entry, data)
    assert len(gaps) + sum(len(t) for t in tensors.values()) == len(data)
    if tensor is not None:
        assert _sha(tensors["w"]) == entry.tensors[0].digest
    split = placement.split_gaps(entry, gaps)
    gap_digests = {c.digest for i, c in enumerate(entry.chunks) if not _inside(i, tensor)}
    assert set(split) == gap_digests
    assert all(_sha(b) == d for d, b in split.items())
    assert placement.chunk_starts(entry)[-1] == len(data)


def _inside(i: int, tensor: tuple[int, int] | None) -> bool:
    return tensor is not None and tensor[0] <= i < tensor[0] + tensor[1]


def test_a_damaged_gap_chunk_is_left_out_of_the_split() -> None:
    data = b"header" + b"W" * 8 + b"footer"
    entry = _entry(data, [6, 8, 6], (1, 1))
    gaps = placement.gap_bytes(entry, data)
    assert gaps == b"headerfooter"
    split = placement.split_gaps(entry, b"HEADERfooter")
    assert list(split.values()) == [b"footer"]
