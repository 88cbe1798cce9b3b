"""Assembles a variant's files from a store, reusing chunks and tensors of a version already held.

The reference implementation of a pull: plan with `content.diffing`, take held chunks by digest,
rebuild changed tensors from deltas, fetch the rest through a verifying `StoreReader`, and check
every tensor, chunk and file digest. Works in memory; must not write files (callers do, atomically).
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_rollout.api.manifest import FileEntry, Manifest
from edge_rollout.content import delta, diffing, placement
from edge_rollout.store import codec
from edge_rollout.store.errors import VerificationError
from edge_rollout.store.reader import StoreReader


def usable_held(held: Manifest | None, files: Mapping[str, bytes]) -> Manifest | None:
    """The held manifest reduced to the files whose bytes are present and verify (or None)."""
    if held is None:
        return None
    ok = [f for f in held.files if f.path in files and codec.sha256_hex(files[f.path]) == f.digest]
    return held.model_copy(update={"files": ok}) if ok else None


def held_pools(
    held: Manifest | None, files: Mapping[str, bytes]
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Chunks by digest and tensors by digest available from the files of a held version."""
    chunks: dict[str, bytes] = {}
    tensors: dict[str, bytes] = {}
    for entry in held.files if held is not None else []:
        data = files.get(entry.path)
        if data is None or codec.sha256_hex(data) != entry.digest:
            continue  # a missing or damaged held file is simply not a seed
        chunks.update(placement.chunk_slices(entry, data))
        tensors.update({t.digest: placement.tensor_bytes(entry, t, data) for t in entry.tensors})
    return chunks, tensors


def _apply(
    reader: StoreReader, use: diffing.DeltaUse, m: Manifest, tensors: dict[str, bytes]
) -> bytes:
    entry = m.files[use.file]
    t = entry.tensors[use.tensor]
    residual = reader.fetch_chunk(use.delta.blob)
    out = delta.apply_delta(
        tensors[use.delta.base], residual, use.delta.item_size, use.delta.encoding
    )
    if codec.sha256_hex(out) != t.digest:
        raise VerificationError(
            f"{entry.path}:{t.name}",
            "delta",
            "the tensor rebuilt from its delta does not match the manifest's digest",
            "The held base or the delta is damaged: pull the full chunks (delta: Off) and retry",
        )
    return out


def assemble(
    reader: StoreReader,
    manifest: Manifest,
    held: Manifest | None = None,
    held_files: Mapping[str, bytes] | None = None,
) -> tuple[dict[str, bytes], diffing.ManifestDiff]:
    """Every file of `manifest`, by path, verified; and the plan that was followed."""
    usable = usable_held(held, held_files or {})
    chunks, tensors = held_pools(usable, held_files or {})
    plan = diffing.diff_manifests(usable, manifest)
    for use in plan.deltas:
        entry = manifest.files[use.file]
        t = entry.tensors[use.tensor]
        rebuilt = _apply(reader, use, manifest, tensors)
        sub = FileEntry(
            path=entry.path,
            size=len(rebuilt),
            digest=t.digest,
            chunks=entry.chunks[t.first_chunk : t.first_chunk + t.chunk_count],
        )
        slices = placement.chunk_slices(sub, rebuilt)
        chunks.update({d: b for d, b in slices.items() if codec.sha256_hex(b) == d})
    for gap_use in plan.gap_deltas:
        chunks.update(_apply_gaps(reader, gap_use, manifest, usable, held_files or {}))
    for ref in plan.fetch:
        chunks.setdefault(ref.digest, reader.fetch_chunk(ref))
    return {f.path: _join(f, chunks) for f in manifest.files}, plan


def _apply_gaps(
    reader: StoreReader,
    use: diffing.GapDeltaUse,
    m: Manifest,
    held: Manifest | None,
    files: Mapping[str, bytes],
) -> dict[str, bytes]:
    """The gap chunks of one file rebuilt from the held file's gap bytes, each verified."""
    entry = m.files[use.file]
    base = next((f for f in held.files if f.digest == use.delta.base), None) if held else None
    frame = reader.fetch_chunk(use.delta.blob)
    size = sum(entry.chunks[i].size for i in use.chunks)
    try:
        gaps = codec.decompress_against(
            frame, placement.gap_bytes(base, files[base.path]) if base else b"", size
        )
    except Exception as exc:  # zstandard raises ZstdError and others for a bad frame
        raise _gap_error(entry, f"the gap delta does not decode ({exc})") from exc
    rebuilt = placement.split_gaps(entry, gaps)
    if len(rebuilt) != len({entry.chunks[i].digest for i in use.chunks}):
        raise _gap_error(entry, "the gap bytes rebuilt from the delta do not match the manifest")
    return rebuilt


def _gap_error(entry: FileEntry, problem: str) -> VerificationError:
    return VerificationError(
        entry.path,
        "delta",
        problem,
        "The held base or the delta is damaged: pull the full chunks (delta: Off) and retry",
    )


def _join(entry: FileEntry, chunks: Mapping[str, bytes]) -> bytes:
    data = b"".join(chunks[c.digest] for c in entry.chunks)
    if len(data) != entry.size or codec.sha256_hex(data) != entry.digest:
        raise VerificationError(
            entry.path,
            "digest",
            "the assembled file does not match the manifest",
            "A held chunk was damaged: retry without reusing held files",
        )
    return data
