"""What a node must download to go from one variant manifest to another, and what it reuses.

Pure: compares two `Manifest` values (the one a node holds, the one it wants). Used by the agent to
plan a pull, by `edge-rollout diff` and by the operator for bytes-saved figures. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_rollout.api.manifest import ChunkRef, FileEntry, GapDelta, Manifest, TensorDelta


@dataclass(frozen=True)
class DeltaUse:
    """Rebuild tensor `tensor` of file `file` from its base with `delta` instead of its chunks."""

    file: int
    tensor: int
    delta: TensorDelta


@dataclass(frozen=True)
class GapDeltaUse:
    """Rebuild the gap chunks `chunks` of file `file` from the held file's gap bytes."""

    file: int
    delta: GapDelta
    chunks: tuple[int, ...]
    """Indexes of all the file's gap chunks (the delta yields their concatenation)."""


@dataclass(frozen=True)
class ManifestDiff:
    """The plan and its cost: stored bytes to fetch, plain bytes reused."""

    fetch: tuple[ChunkRef, ...]
    """Chunks to download (each digest once)."""
    deltas: tuple[DeltaUse, ...]
    """Tensors to rebuild from a delta (their chunks are not in `fetch`)."""
    fetch_bytes: int
    """Stored bytes of `fetch` plus the delta blobs: the bytes on the wire (manifest excluded)."""
    reused_bytes: int
    """Plain bytes taken from the held version (chunks present plus delta-rebuilt bytes)."""
    total_bytes: int
    """Plain size of all files of the wanted manifest."""
    chunks_total: int
    """Chunks in the wanted manifest."""
    chunks_reused: int
    """Chunks in the wanted manifest that the held one has."""
    gap_deltas: tuple[GapDeltaUse, ...] = ()
    """Files whose gap chunks are rebuilt from a gap delta (those chunks are not in `fetch`)."""


def gap_indexes(entry: FileEntry) -> list[int]:
    """Indexes of the chunks of a file outside all of its aligned tensors, in file order.

    >>> from edge_rollout.api.manifest import ChunkRef, TensorRange
    >>> c = ChunkRef(digest="0" * 64, size=1, stored=1)
    >>> t = TensorRange(name="w", dtype="uint8", first_chunk=1, chunk_count=2, digest="0" * 64)
    >>> gap_indexes(FileEntry(path="m", size=4, digest="0" * 64, chunks=[c] * 4, tensors=[t]))
    [0, 3]
    """
    inside = {i for t in entry.tensors for i in range(t.first_chunk, t.first_chunk + t.chunk_count)}
    return [i for i in range(len(entry.chunks)) if i not in inside]


def _chunk_set(m: Manifest | None) -> set[str]:
    return {c.digest for f in m.files for c in f.chunks} if m is not None else set()


def _tensor_set(m: Manifest | None) -> set[str]:
    return {t.digest for f in m.files for t in f.tensors} if m is not None else set()


def _file_set(m: Manifest | None) -> set[str]:
    return {f.digest for f in m.files} if m is not None else set()


def _missing_cost(chunks: list[ChunkRef], have: set[str]) -> int:
    return sum(c.stored for c in {c.digest: c for c in chunks if c.digest not in have}.values())


def _pick_deltas(f_index: int, f: FileEntry, have: set[str], bases: set[str]) -> list[DeltaUse]:
    """Per tensor, the smallest usable delta when it beats downloading the missing chunks."""
    uses: list[DeltaUse] = []
    for t_index, t in enumerate(f.tensors):
        chunks = f.chunks[t.first_chunk : t.first_chunk + t.chunk_count]
        missing = _missing_cost(chunks, have)
        usable = [d for d in t.deltas if d.base in bases and d.blob.stored < missing]
        if usable and t.digest not in have:
            uses.append(DeltaUse(f_index, t_index, min(usable, key=lambda d: d.blob.stored)))
    return uses


def _pick_gap_delta(
    f_index: int, f: FileEntry, have: set[str], files: set[str]
) -> GapDeltaUse | None:
    """The smallest usable gap delta, when it beats downloading the missing gap chunks."""
    gaps = gap_indexes(f)
    missing = _missing_cost([f.chunks[i] for i in gaps], have)
    usable = [d for d in f.gap_deltas if d.base in files and d.blob.stored < missing]
    if not usable:
        return None
    return GapDeltaUse(f_index, min(usable, key=lambda d: d.blob.stored), tuple(gaps))


def diff_manifests(held: Manifest | None, wanted: Manifest, *, deltas: bool = True) -> ManifestDiff:
    """Chunks to fetch and deltas to apply to turn `held` (or nothing) into `wanted`.

    Chunks are reused by digest from any file of `held`; a tensor with a delta whose base is a
    tensor of `held` is rebuilt from it when the delta is smaller than its missing chunks, and
    the bytes between tensors likewise from a gap delta whose base is a file of `held`.
    """
    have = _chunk_set(held)
    bases = _tensor_set(held) if deltas else set()
    files = _file_set(held) if deltas else set()
    uses = [u for i, f in enumerate(wanted.files) for u in _pick_deltas(i, f, have, bases)]
    gap_uses = [g for i, f in enumerate(wanted.files) if (g := _pick_gap_delta(i, f, have, files))]
    covered = {
        (u.file, c)
        for u in uses
        for t in [wanted.files[u.file].tensors[u.tensor]]
        for c in range(t.first_chunk, t.first_chunk + t.chunk_count)
    } | {(g.file, c) for g in gap_uses for c in g.chunks}
    fetch: dict[str, ChunkRef] = {}
    for fi, f in enumerate(wanted.files):
        for ci, c in enumerate(f.chunks):
            if c.digest not in have and (fi, ci) not in covered:
                fetch.setdefault(c.digest, c)
    all_chunks = [c for f in wanted.files for c in f.chunks]
    reused_plain = sum(c.size for c in all_chunks if c.digest in have)
    rebuilt_plain = sum(
        wanted.files[fi].chunks[ci].size
        for fi, ci in covered
        if wanted.files[fi].chunks[ci].digest not in have
    )
    blobs = [u.delta.blob for u in uses] + [g.delta.blob for g in gap_uses]
    return ManifestDiff(
        fetch=tuple(fetch.values()),
        deltas=tuple(uses),
        fetch_bytes=sum(c.stored for c in fetch.values()) + sum(b.stored for b in blobs),
        reused_bytes=reused_plain + rebuilt_plain,
        total_bytes=sum(f.size for f in wanted.files),
        chunks_total=len(all_chunks),
        chunks_reused=sum(1 for c in all_chunks if c.digest in have),
        gap_deltas=tuple(gap_uses),
    )
