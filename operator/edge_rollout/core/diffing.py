"""What a node must download to go from one variant manifest to another, and what it reuses.

Pure: compares two `Manifest` values (the one a node holds, the one it wants). Used by the agent to
plan a pull, by `edge-rollout diff` and by the operator for bytes-saved figures. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_rollout.api.manifest import ChunkRef, FileEntry, Manifest, TensorDelta


@dataclass(frozen=True)
class DeltaUse:
    """Rebuild tensor `tensor` of file `file` from its base with `delta` instead of its chunks."""

    file: int
    tensor: int
    delta: TensorDelta


@dataclass(frozen=True)
class ManifestDiff:
    """The plan and its cost: stored bytes to fetch, plain bytes reused."""

    fetch: tuple[ChunkRef, ...]
    """Chunks to download (each digest once)."""
    deltas: tuple[DeltaUse, ...]
    """Tensors to rebuild from a delta (their chunks are not in `fetch`)."""
    fetch_bytes: int
    """Stored bytes of `fetch` plus the delta residuals: the bytes on the wire."""
    reused_bytes: int
    """Plain bytes taken from the held version (chunks present plus delta-rebuilt tensors)."""
    total_bytes: int
    """Plain size of all files of the wanted manifest."""
    chunks_total: int
    """Chunks in the wanted manifest."""
    chunks_reused: int
    """Chunks in the wanted manifest that the held one has."""


def _chunk_set(m: Manifest | None) -> set[str]:
    return {c.digest for f in m.files for c in f.chunks} if m is not None else set()


def _tensor_set(m: Manifest | None) -> set[str]:
    return {t.digest for f in m.files for t in f.tensors} if m is not None else set()


def _pick_deltas(f_index: int, f: FileEntry, have: set[str], bases: set[str]) -> list[DeltaUse]:
    """Per tensor, the smallest usable delta when it beats downloading the missing chunks."""
    uses: list[DeltaUse] = []
    for t_index, t in enumerate(f.tensors):
        chunks = f.chunks[t.first_chunk : t.first_chunk + t.chunk_count]
        missing = sum(c.stored for c in chunks if c.digest not in have)
        usable = [d for d in t.deltas if d.base in bases and d.blob.stored < missing]
        if usable and t.digest not in have:
            uses.append(DeltaUse(f_index, t_index, min(usable, key=lambda d: d.blob.stored)))
    return uses


def diff_manifests(held: Manifest | None, wanted: Manifest, *, deltas: bool = True) -> ManifestDiff:
    """Chunks to fetch and deltas to apply to turn `held` (or nothing) into `wanted`.

    Chunks are reused by digest from any file of `held`; a tensor with a delta whose base is a
    tensor of `held` is rebuilt from it when the delta is smaller than its missing chunks.
    """
    have = _chunk_set(held)
    bases = _tensor_set(held) if deltas else set()
    uses = [u for i, f in enumerate(wanted.files) for u in _pick_deltas(i, f, have, bases)]
    covered = {
        (u.file, c)
        for u in uses
        for t in [wanted.files[u.file].tensors[u.tensor]]
        for c in range(t.first_chunk, t.first_chunk + t.chunk_count)
    }
    fetch: dict[str, ChunkRef] = {}
    for fi, f in enumerate(wanted.files):
        for ci, c in enumerate(f.chunks):
            if c.digest not in have and (fi, ci) not in covered:
                fetch.setdefault(c.digest, c)
    all_chunks = [c for f in wanted.files for c in f.chunks]
    reused_plain = sum(c.size for c in all_chunks if c.digest in have)
    delta_plain = sum(
        wanted.files[u.file].chunks[ci].size
        for u in uses
        for t in [wanted.files[u.file].tensors[u.tensor]]
        for ci in range(t.first_chunk, t.first_chunk + t.chunk_count)
        if wanted.files[u.file].chunks[ci].digest not in have
    )
    return ManifestDiff(
        fetch=tuple(fetch.values()),
        deltas=tuple(uses),
        fetch_bytes=sum(c.stored for c in fetch.values()) + sum(u.delta.blob.stored for u in uses),
        reused_bytes=reused_plain + delta_plain,
        total_bytes=sum(f.size for f in wanted.files),
        chunks_total=len(all_chunks),
        chunks_reused=sum(1 for c in all_chunks if c.digest in have),
    )
