"""Chunking of model files: cut at tensor boundaries, content-defined cuts inside and between.

Pure: takes the file bytes and the byte ranges of its tensors (found by the publisher, which alone
parses ONNX) and returns chunk boundaries with digests. Must not parse ONNX, compress, or do I/O.

A tensor's bytes are chunked on their own, so an unchanged tensor yields the same chunks wherever
it moves in the next version; the bytes between tensors are chunked by content (gear hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_rollout.content.diffing import ManifestDiff, diff_manifests

__all__ = [
    "DEFAULT_PARAMS",
    "ChunkParams",
    "Chunking",
    "ManifestDiff",
    "Piece",
    "TensorPlacement",
    "TensorSpan",
    "chunk_file",
    "cut_points",
    "diff_manifests",
]


@dataclass(frozen=True)
class ChunkParams:
    """Content-defined chunking sizes (bytes): 32/128/512 KiB, chosen by the sweep in
    bench/chunking (figures in docs/store-format.md)."""

    min_size: int = 32 * 1024
    avg_bits: int = 17
    max_size: int = 512 * 1024
    min_tensor: int = 4 * 1024
    """Tensors smaller than this are chunked with the bytes around them."""


DEFAULT_PARAMS = ChunkParams()


@dataclass(frozen=True)
class TensorSpan:
    """Where a tensor's raw values are in the file (input from the publisher)."""

    name: str
    dtype: str
    start: int
    end: int


@dataclass(frozen=True)
class Piece:
    """One chunk: its place in the file and the sha256 of its bytes."""

    offset: int
    size: int
    digest: str


@dataclass(frozen=True)
class TensorPlacement:
    """A tensor the chunking was aligned to: its chunks and the digest of its bytes."""

    name: str
    dtype: str
    first_chunk: int
    chunk_count: int
    digest: str


@dataclass(frozen=True)
class Chunking:
    """The result of chunking one file."""

    pieces: tuple[Piece, ...]
    tensors: tuple[TensorPlacement, ...]


def _gear_table() -> npt.NDArray[np.uint64]:
    seed = b"".join(hashlib.sha256(b"edge-rollout gear %d" % i).digest() for i in range(64))
    return np.frombuffer(seed[: 256 * 8], dtype="<u8").astype(np.uint64)


_GEAR = _gear_table()


def _gear_hashes(data: bytes | memoryview) -> npt.NDArray[np.uint64]:
    """h[i] = sum(GEAR[data[i-k]] << k for k < 64) mod 2**64, computed by doubling (6 passes)."""
    h = _GEAR[np.frombuffer(data, dtype=np.uint8)]
    width = 1
    while width < 64:
        shifted = np.zeros_like(h)
        shifted[width:] = h[:-width] << np.uint64(width)
        h = h + shifted
        width *= 2
    return h


HASH_BLOCK = 1 << 22
"""Bytes hashed at a time: the gear hashes take 8 bytes per input byte (and twice that while
doubling), so a block bounds the memory whatever the size of the tensor or file."""


def _candidates(data: bytes | memoryview, mask: np.uint64, block: int) -> npt.NDArray[np.intp]:
    """End offsets of every position whose gear hash has the mask's bits clear, hashed block by
    block: each block starts with the 63 bytes before it, the window of its first hash."""
    found = [np.zeros(0, dtype=np.intp)]
    for start in range(0, len(data), block):
        lead = min(start, 63)
        hashes = _gear_hashes(data[start - lead : start + block])[lead:]
        found.append(np.flatnonzero((hashes & mask) == 0) + start + 1)
    return np.concatenate(found)


def cut_points(
    data: bytes | memoryview, params: ChunkParams = DEFAULT_PARAMS, block: int = HASH_BLOCK
) -> list[int]:
    """End offsets of the content-defined chunks of `data` (the last one is `len(data)`).

    >>> cut_points(b"")
    []
    >>> cut_points(b"x" * 10)
    [10]
    """
    if len(data) <= params.min_size:
        return [len(data)] if data else []
    mask = np.uint64(((1 << params.avg_bits) - 1) << (64 - params.avg_bits))
    candidates = _candidates(data, mask, block)
    cuts: list[int] = []
    last = 0
    while len(data) - last > params.min_size:
        i = int(np.searchsorted(candidates, last + params.min_size))
        nxt = int(candidates[i]) if i < len(candidates) else len(data)
        last = min(nxt, last + params.max_size, len(data))
        cuts.append(last)
    if last < len(data):
        cuts.append(len(data))
    return cuts


Region = tuple[int, int, bool]
"""(start, end, is_tensor) of a part of the file that is chunked on its own."""


def _regions(size: int, spans: Sequence[TensorSpan], params: ChunkParams) -> list[Region]:
    """The regions chunked separately: big tensors and the gaps between them, in file order."""
    regions: list[Region] = []
    pos = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.end - span.start < params.min_tensor or span.start < pos or span.end > size:
            continue
        if span.start > pos:
            regions.append((pos, span.start, False))
        regions.append((span.start, span.end, True))
        pos = span.end
    if pos < size:
        regions.append((pos, size, False))
    return regions


def _sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def chunk_file(
    data: bytes, spans: Sequence[TensorSpan] = (), params: ChunkParams = DEFAULT_PARAMS
) -> Chunking:
    """Chunk one file, aligning chunks to the given tensors.

    >>> c = chunk_file(b"a" * 5000 + b"b" * 5000, [TensorSpan("w", "uint8", 5000, 10000)])
    >>> [(p.offset, p.size) for p in c.pieces], c.tensors[0].first_chunk
    ([(0, 5000), (5000, 5000)], 1)
    """
    view = memoryview(data)
    pieces: list[Piece] = []
    starts: dict[int, int] = {}
    for start, end, is_tensor in _regions(len(data), spans, params):
        if is_tensor:
            starts[start] = len(pieces)
        offset = start
        for cut in cut_points(view[start:end], params):
            pieces.append(Piece(offset, start + cut - offset, _sha256(view[offset : start + cut])))
            offset = start + cut
    placements = tuple(
        _placement(view, span, starts, pieces) for span in spans if span.start in starts
    )
    return Chunking(tuple(pieces), tuple(p for p in placements if p is not None))


def _placement(
    view: memoryview, span: TensorSpan, starts: dict[int, int], pieces: list[Piece]
) -> TensorPlacement | None:
    first = starts[span.start]
    count = 0
    while first + count < len(pieces) and pieces[first + count].offset < span.end:
        count += 1
    if count == 0 or pieces[first + count - 1].offset + pieces[first + count - 1].size != span.end:
        return None
    digest = _sha256(view[span.start : span.end])
    return TensorPlacement(span.name, span.dtype, first, count, digest)
