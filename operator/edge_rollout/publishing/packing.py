"""Packs variant files into a directory store: chunks, per-tensor deltas, golden blobs, manifests.

Calls `content.chunking` and `content.delta` on bytes the publisher gives it (with tensor ranges
found by `publishing.onnxmodel`), and writes content-addressed objects through `store.writer`.
Must not sign or make a release visible (that is `DirectoryStore.publish`, last).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge_rollout.api.manifest import (
    ChunkRef,
    FileEntry,
    GapDelta,
    GoldenRef,
    TensorDelta,
    TensorRange,
    Tolerance,
)
from edge_rollout.content import chunking, counterparts, delta, diffing, golden, placement
from edge_rollout.publishing import files
from edge_rollout.store import codec
from edge_rollout.store.writer import DirectoryStore

Progress = Callable[[int], None]
DROP_EVERY = 256
"""Chunks stored between two `files.drop_pages` of a mapped file (about 32 MiB)."""


class HeldTensors(Mapping[str, bytes]):
    """A held file's placed tensors by name, each read from its bytes (a mapped file) only when
    asked for: a changed tensor's base, never the whole file at once."""

    def __init__(self, entry: FileEntry, data: bytes) -> None:
        self.entry, self.data = entry, data
        self.by_name = {t.name: t for t in entry.tensors}

    def __getitem__(self, name: str) -> bytes:
        return placement.tensor_bytes(self.entry, self.by_name[name], self.data)

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)


@dataclass(frozen=True)
class Base:
    """The same file in the previous release: tensors' bytes by name, chunk digests, gap bytes."""

    version: str
    tensors: Mapping[str, bytes]
    chunks: frozenset[str]
    file_digest: str = ""
    """sha256 of the whole base file (what a gap delta names as its base)."""
    gaps: bytes = b""
    """The base file's gap bytes (outside its aligned tensors): the prefix of a gap delta."""
    keys: tuple[counterparts.TensorKey, ...] = ()
    """Its tensors' names, dtypes, sizes and digests in file order (to pair changed tensors)."""


def base_of(version: str, entry: FileEntry, data: bytes, chunks: frozenset[str]) -> Base:
    """The base for the next release made from one file of a published manifest and its bytes.

    `chunks` are the digests the held version has (all files of its manifest). `data` may be a
    mapped file: tensors are read from it when a delta needs them."""
    return Base(
        version=version,
        tensors=HeldTensors(entry, data),
        chunks=chunks,
        file_digest=entry.digest,
        gaps=placement.gap_bytes(entry, data),
        keys=placement.tensor_keys(entry),
    )


def pack_file(
    store: DirectoryStore,
    path: str,
    data: bytes,
    spans: Sequence[chunking.TensorSpan],
    base: Base | None = None,
    progress: Progress | None = None,
    params: chunking.ChunkParams = chunking.DEFAULT_PARAMS,
) -> FileEntry:
    """Chunk one file into the store; add tensor and gap deltas against `base` where smaller."""
    cut = chunking.chunk_file(data, spans, params)
    files.drop_pages(data)
    refs: list[ChunkRef] = []
    for i, piece in enumerate(cut.pieces):
        refs.append(store.put_blob(data[piece.offset : piece.offset + piece.size]))
        if progress is not None:
            progress(piece.size)
        if i % DROP_EVERY == DROP_EVERY - 1:
            files.drop_pages(data)
    pairs = _pairs(cut, base)
    tensors = [_tensor(store, t, data, refs, base, pairs.get(t.name)) for t in cut.tensors]
    digest = codec.sha256_hex(data)
    files.drop_pages(data)
    entry = FileEntry(path=path, size=len(data), digest=digest, chunks=refs, tensors=tensors)
    gap = _gap_delta(store, entry, data, base)
    return entry.model_copy(update={"gap_deltas": [gap]}) if gap is not None else entry


def _pairs(cut: chunking.Chunking, base: Base | None) -> dict[str, str]:
    """Each changed tensor's counterpart in the base (by name, then by dtype, size and order)."""
    if base is None:
        return {}
    keys = [
        counterparts.TensorKey(
            t.name, t.dtype, sum(p.size for p in cut.pieces[t.first_chunk :][: t.chunk_count]),
            t.digest,
        )
        for t in cut.tensors
    ]  # fmt: skip
    return counterparts.counterparts(keys, base.keys)


def _gap_delta(
    store: DirectoryStore, entry: FileEntry, data: bytes, base: Base | None
) -> GapDelta | None:
    """A zstd-prefix delta of the file's gap bytes against the base's, if it stores smaller than
    the gap chunks the base does not have (checked by decoding it once)."""
    if base is None or not base.file_digest or base.file_digest == entry.digest:
        return None
    gaps = [entry.chunks[i] for i in diffing.gap_indexes(entry)]
    cost = sum(
        c.stored for c in {c.digest: c for c in gaps if c.digest not in base.chunks}.values()
    )
    new = placement.gap_bytes(entry, data)
    frame = codec.compress_against(new, base.gaps) if cost else None
    if frame is None or store.stored_size(frame) >= cost:
        return None
    if codec.decompress_against(frame, base.gaps, len(new)) != new:
        return None
    blob = store.put_blob(frame)
    return GapDelta(base=base.file_digest, base_version=base.version, blob=blob)


def _tensor(
    store: DirectoryStore,
    t: chunking.TensorPlacement,
    data: bytes,
    refs: list[ChunkRef],
    base: Base | None,
    counterpart: str | None = None,
) -> TensorRange:
    own = refs[t.first_chunk : t.first_chunk + t.chunk_count]
    deltas: list[TensorDelta] = []
    old = base.tensors.get(counterpart) if base is not None and counterpart else None
    if base is not None and old is not None and codec.sha256_hex(old) != t.digest:
        offset = sum(r.size for r in refs[: t.first_chunk])
        new = data[offset : offset + sum(r.size for r in own)]
        cost = sum(r.stored for r in own if r.digest not in base.chunks)
        found = best_delta(store, old, new, t.dtype, cost)
        if found is not None:
            encoding, item_size, residual = found
            deltas.append(
                TensorDelta(
                    base=codec.sha256_hex(old),
                    base_version=base.version,
                    encoding=encoding,
                    item_size=item_size,
                    blob=store.put_blob(residual),
                )
            )
    return TensorRange(
        name=t.name,
        dtype=t.dtype,
        first_chunk=t.first_chunk,
        chunk_count=t.chunk_count,
        digest=t.digest,
        deltas=deltas,
    )


def best_delta(
    store: DirectoryStore, old: bytes, new: bytes, dtype: str, cost: int
) -> tuple[delta.Encoding, int, bytes] | None:
    """The smallest verified residual of `new` against `old`, if it stores in under `cost` bytes."""
    item_size = delta.item_size_of(dtype)
    if len(old) != len(new) or len(new) % item_size:
        return None
    best: tuple[delta.Encoding, int, bytes] | None = None
    best_size = cost
    for encoding in delta.candidates(old, new, item_size):  # one residual at a time
        residual = delta.residual(old, new, item_size, encoding)
        size = store.stored_size(residual)
        if size < best_size and delta.apply_delta(old, residual, item_size, encoding) == new:
            best, best_size = (encoding, item_size, residual), size
    return best


def tolerance_for(
    precision: str, outputs: Sequence[Mapping[str, npt.NDArray[np.generic]]]
) -> Tolerance:
    """Tolerances for the smoke test: looser for reduced precision, scaled by output magnitude."""
    scale = max(
        (
            float(np.max(np.abs(v), initial=0.0))
            for o in outputs
            for v in o.values()
            if v.dtype.kind == "f"
        ),
        default=1.0,
    )
    rel = 1e-3 if precision == "fp32" else 2e-2
    return Tolerance(
        rtol=rel, atol=rel * scale + 1e-6, min_cosine=0.9999 if precision == "fp32" else 0.995
    )


def pack_golden(
    store: DirectoryStore,
    precision: str,
    inputs: Sequence[Mapping[str, npt.NDArray[np.generic]]],
    outputs: Sequence[Mapping[str, npt.NDArray[np.generic]]],
    budget: int = golden.BUDGET_FLOOR,
) -> GoldenRef:
    """Store golden vectors for the agent's smoke test: as many leading cases as fit `budget`
    (at least one), inputs and compacted outputs in two content-addressed blobs."""
    tolerance = tolerance_for(precision, outputs)
    sizes = [golden.case_bytes(i, o, tolerance) for i, o in zip(inputs, outputs, strict=True)]
    n = golden.cases_within(sizes, budget)
    feeds, expected = golden.split(inputs[:n], outputs[:n], tolerance)
    return GoldenRef(
        inputs=store.put_blob(codec.canonical_json(feeds)),
        outputs=store.put_blob(codec.canonical_json(expected)),
        cases=n,
        tolerance=tolerance,
    )
