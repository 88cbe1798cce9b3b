"""Every byte an agent downloads to move a node from one variant manifest to another.

Pure: adds to `diffing.diff_manifests` (chunks and deltas) what the agent also fetches, the
manifest (whole or as a delta), its detached signature and the golden vectors, each as stored.
Used by `edge-rollout diff`; checked byte for byte against nginx's access log.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_rollout.api.manifest import ChunkRef, Manifest
from edge_rollout.content import diffing


@dataclass(frozen=True)
class FetchCost:
    """Stored bytes an agent downloads, by kind, for one variant update."""

    manifest: int
    """The manifest delta against the held manifest, or the whole manifest."""
    manifest_signature: int
    """`manifests/sha256/<hex>.sig` (0 for an agent without a public key)."""
    golden: int
    """Golden-vector blobs the node does not hold (0 when test vectors are not required)."""
    chunks: int
    """Chunks not held and not rebuilt from a delta."""
    tensor_deltas: int
    """Tensor delta residuals."""
    gap_deltas: int
    """Graph ("gap") delta frames."""
    chunk_count: int
    """Number of chunk downloads."""

    @property
    def total(self) -> int:
        """All of the above: the bytes on the wire (HTTP bodies)."""
        return (
            self.manifest
            + self.manifest_signature
            + self.golden
            + self.chunks
            + self.tensor_deltas
            + self.gap_deltas
        )

    def as_json(self) -> dict[str, int]:
        """camelCase breakdown for `edge-rollout diff -o json`."""
        return {
            "manifest": self.manifest,
            "manifestSignature": self.manifest_signature,
            "goldenVectors": self.golden,
            "chunks": self.chunks,
            "tensorDeltas": self.tensor_deltas,
            "gapDeltas": self.gap_deltas,
        }


def golden_cost(wanted: Manifest, held_golden: frozenset[str]) -> int:
    """Stored bytes of the wanted golden blobs whose digests are not in `held_golden`."""
    refs = {r.digest: r for r in golden_refs(wanted) if r.digest not in held_golden}
    return sum(r.stored for r in refs.values())


def golden_refs(m: Manifest | None) -> list[ChunkRef]:
    """The blobs holding a manifest's golden vectors (none without golden vectors)."""
    if m is None or m.golden is None:
        return []
    return m.golden.blobs()


def golden_digests(m: Manifest | None) -> list[str]:
    """Digests of `golden_refs(m)`."""
    return [r.digest for r in golden_refs(m)]


def held_golden(held: Manifest | None) -> list[str]:
    """Golden blobs an agent holding `held` keeps on disk (`<data>/golden/sha256/<hex>`) and
    reuses by digest: those of `held`."""
    return golden_digests(held)


def plan(
    held: Manifest | None,
    wanted: Manifest,
    *,
    manifest_bytes: int,
    signature_bytes: int,
    with_golden: bool = True,
    held_golden: frozenset[str] = frozenset(),
    deltas: bool = True,
) -> tuple[diffing.ManifestDiff, FetchCost]:
    """The agent's plan for `held` -> `wanted` and what it costs on the wire.

    `manifest_bytes`: stored size of what the agent fetches for the manifest (the manifest delta
    against `held` when the store has one, else the whole stored manifest). `held_golden`: the
    golden blobs the node keeps on disk, by digest.
    """
    diff = diffing.diff_manifests(held, wanted, deltas=deltas)
    golden = golden_cost(wanted, held_golden) if with_golden else 0
    cost = FetchCost(
        manifest=manifest_bytes,
        manifest_signature=signature_bytes,
        golden=golden,
        chunks=sum(c.stored for c in diff.fetch),
        tensor_deltas=sum(u.delta.blob.stored for u in diff.deltas),
        gap_deltas=sum(g.delta.blob.stored for g in diff.gap_deltas),
        chunk_count=len(diff.fetch),
    )
    return diff, cost
