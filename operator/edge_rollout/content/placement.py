"""Where a manifest's chunks and tensors sit in a file's bytes: slices by digest, tensors by name,
and the gap bytes (everything outside aligned tensors) that a gap delta is coded against.

Shared by the publisher (bases for the next release), the store's reference pull and the agent
(rebuilding gap chunks). Pure bytes; must not fetch, decompress or write.
"""

from __future__ import annotations

import hashlib
import itertools

from edge_rollout.api.manifest import FileEntry, TensorRange
from edge_rollout.content import diffing
from edge_rollout.content.counterparts import TensorKey


def chunk_starts(entry: FileEntry) -> list[int]:
    """The offset of every chunk, then the file size: `starts[i]:starts[i + 1]` is chunk i."""
    return [0, *itertools.accumulate(c.size for c in entry.chunks)]


def chunk_slices(entry: FileEntry, data: bytes) -> dict[str, bytes]:
    """The bytes of every chunk of the file, by digest (first occurrence)."""
    starts = chunk_starts(entry)
    out: dict[str, bytes] = {}
    for i, c in enumerate(entry.chunks):
        out.setdefault(c.digest, data[starts[i] : starts[i + 1]])
    return out


def tensor_bytes(entry: FileEntry, t: TensorRange, data: bytes) -> bytes:
    """The bytes of one placed tensor (its whole chunks)."""
    starts = chunk_starts(entry)
    return data[starts[t.first_chunk] : starts[t.first_chunk + t.chunk_count]]


def tensors_by_name(entry: FileEntry, data: bytes) -> dict[str, bytes]:
    """The raw bytes of every placed tensor of a file, by name (the base for the next release)."""
    return {t.name: tensor_bytes(entry, t, data) for t in entry.tensors}


def tensor_keys(entry: FileEntry) -> tuple[TensorKey, ...]:
    """Name, dtype, byte size and digest of every placed tensor of a file, in file order."""
    starts = chunk_starts(entry)
    return tuple(
        TensorKey(t.name, t.dtype, starts[t.first_chunk + t.chunk_count] - starts[t.first_chunk],
                  t.digest)
        for t in entry.tensors
    )  # fmt: skip


def gap_bytes(entry: FileEntry, data: bytes) -> bytes:
    """The gap bytes of a file: its chunks outside every aligned tensor, joined in file order."""
    starts = chunk_starts(entry)
    return b"".join(data[starts[i] : starts[i + 1]] for i in diffing.gap_indexes(entry))


def split_gaps(entry: FileEntry, gaps: bytes) -> dict[str, bytes]:
    """The gap chunks in `gaps` (a gap delta's result) whose bytes match their digest, by digest."""
    out: dict[str, bytes] = {}
    offset = 0
    for i in diffing.gap_indexes(entry):
        c = entry.chunks[i]
        piece = gaps[offset : offset + c.size]
        offset += c.size
        if hashlib.sha256(piece).hexdigest() == c.digest:
            out[c.digest] = piece
    return out
