"""Rebuilding chunks from deltas against the version a node holds: tensors and gap bytes.

Reads the held version's bytes from disk (each piece verified against the held manifest), applies
the tensor deltas and gap deltas the plan chose, and stages every rebuilt chunk whose digest
matches. Must not fetch (residuals are already staged), assemble or activate.
"""

from __future__ import annotations

from pathlib import Path

from edge_rollout.api.manifest import ChunkRef, FileEntry, Manifest
from edge_rollout.content import delta, diffing, placement
from edge_rollout.store import codec
from edge_rollout_agent import fetching, layout
from edge_rollout_agent.layout import ModelDir
from edge_rollout_agent.policy import Installed


class DeltaMismatchError(Exception):
    """A tensor rebuilt from a verified base and a verified residual does not match its digest."""


def rebuild_tensors(
    diff: diffing.ManifestDiff,
    manifest: Manifest,
    held: Manifest | None,
    model_dir: ModelDir,
    staging: Path,
) -> list[ChunkRef]:
    """Stage the chunks of tensors rebuilt from deltas; return the chunks it could not build."""
    if not diff.deltas or held is None:
        return []
    unbuilt: list[ChunkRef] = []
    bases = _held_tensor_spans(held, model_dir)
    for use in diff.deltas:
        entry = manifest.files[use.file]
        tensor = entry.tensors[use.tensor]
        base = _read_tensor(bases.get(use.delta.base), use.delta.base)
        residual = fetching.read_verified(use.delta.blob.digest, None,
                                          staging / "chunks" / use.delta.blob.digest)  # fmt: skip
        if not base or residual is None:
            unbuilt += entry.chunks[tensor.first_chunk : tensor.first_chunk + tensor.chunk_count]
            continue
        rebuilt = delta.apply_delta(base, residual, use.delta.item_size, use.delta.encoding)
        if codec.sha256_hex(rebuilt) != tensor.digest:
            raise DeltaMismatchError(
                f"{entry.path}:{tensor.name}: rebuilt tensor does not match its digest"
            )
        _stage_tensor_chunks(entry, tensor.first_chunk, tensor.chunk_count, rebuilt, staging)
    return unbuilt


def rebuild_gaps(
    diff: diffing.ManifestDiff,
    manifest: Manifest,
    held: Manifest | None,
    model_dir: ModelDir,
    staging: Path,
) -> list[ChunkRef]:
    """Stage the gap chunks rebuilt from gap deltas; return those it could not build (a damaged
    base or delta is not fatal: those chunks are simply fetched)."""
    if not diff.gap_deltas or held is None:
        return []
    have = {c.digest for entry in held.files for c in entry.chunks}
    unbuilt: list[ChunkRef] = []
    for use in diff.gap_deltas:
        entry = manifest.files[use.file]
        rebuilt = _gap_chunks(use, entry, held, model_dir, staging)
        for chunk in {entry.chunks[i].digest: entry.chunks[i] for i in use.chunks}.values():
            if chunk.digest in rebuilt and chunk.digest not in have:
                layout.write_atomic(staging / "chunks" / chunk.digest, rebuilt[chunk.digest])
            elif chunk.digest not in rebuilt:
                unbuilt.append(chunk)
    return unbuilt


def _gap_chunks(
    use: diffing.GapDeltaUse, entry: FileEntry, held: Manifest, model_dir: ModelDir, staging: Path
) -> dict[str, bytes]:
    """The gap chunks of `entry` that the delta rebuilds from the held file, verified, by digest."""
    base_entry = next((f for f in held.files if f.digest == use.delta.base), None)
    blob = use.delta.blob
    frame = fetching.read_verified(blob.digest, None, staging / "chunks" / blob.digest)
    if base_entry is None or frame is None:
        return {}
    path = model_dir.path(Installed(held.version, held.variant)) / base_entry.path
    base = _held_gaps(base_entry, path)
    size = sum(entry.chunks[i].size for i in use.chunks)
    try:
        gaps = codec.decompress_against(frame, base, size) if base is not None else b""
    except Exception:  # zstandard raises ZstdError and others for a frame that does not fit
        return {}
    return placement.split_gaps(entry, gaps)


def _held_gaps(entry: FileEntry, path: Path) -> bytes | None:
    """The gap bytes of a held file, read chunk by chunk from disk and verified (None if not)."""
    starts = [0]
    for chunk in entry.chunks:
        starts.append(starts[-1] + chunk.size)
    parts: list[bytes] = []
    for i in diffing.gap_indexes(entry):
        data = fetching.read_span(fetching.SeedSpan(path, starts[i], entry.chunks[i].size))
        if codec.sha256_hex(data) != entry.chunks[i].digest:
            return None
        parts.append(data)
    return b"".join(parts)


def _held_tensor_spans(held: Manifest, model_dir: ModelDir) -> dict[str, fetching.SeedSpan]:
    """Where each tensor of the held version sits on disk, by digest: a base is read (and
    verified) only when a delta needs it, so memory stays one tensor, not the whole model."""
    item = Installed(held.version, held.variant)
    out: dict[str, fetching.SeedSpan] = {}
    for entry in held.files:
        path = model_dir.path(item) / entry.path
        starts = [0]
        for chunk in entry.chunks:
            starts.append(starts[-1] + chunk.size)
        for tensor in entry.tensors:
            start, end = starts[tensor.first_chunk], starts[tensor.first_chunk + tensor.chunk_count]
            out.setdefault(tensor.digest, fetching.SeedSpan(path, start, end - start))
    return out


def _read_tensor(span: fetching.SeedSpan | None, digest: str) -> bytes:
    """The held tensor's bytes if they still match `digest` ("" when not: fetch instead)."""
    data = fetching.read_span(span) if span is not None else b""
    return data if data and codec.sha256_hex(data) == digest else b""


def _stage_tensor_chunks(
    entry: FileEntry, first: int, count: int, data: bytes, staging: Path
) -> None:
    offset = 0
    for chunk in entry.chunks[first : first + count]:
        piece = data[offset : offset + chunk.size]
        offset += chunk.size
        if codec.sha256_hex(piece) == chunk.digest:
            layout.write_atomic(staging / "chunks" / chunk.digest, piece)
