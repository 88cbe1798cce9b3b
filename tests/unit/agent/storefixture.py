"""A tiny publisher for the agent's tests: chunks a model into a directory store and signs it.

Uses the store's own writer and chunking, so the agent reads exactly what the store writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_rollout.api.manifest import (
    GoldenInputs,
    GoldenOutputs,
    GoldenRef,
    GoldenVectors,
    Manifest,
    Tolerance,
)
from edge_rollout.api.release import Measurements, Release, VariantEntry
from edge_rollout.content import chunking
from edge_rollout.publishing import packing
from edge_rollout.store import codec, keys
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore

PARAMS = chunking.ChunkParams(min_size=2048, avg_bits=12, max_size=16384, min_tensor=1024)


@dataclass
class ScratchStore:
    root: Path

    def __post_init__(self) -> None:
        self.store = DirectoryStore(self.root, level=3)
        self.key = keys.generate_private_key()

    @property
    def public_key(self) -> str:
        return keys.public_key_pem(self.key.public_key())

    def reader(self) -> StoreReader:
        return StoreReader(FileTransport(self.root), self.key.public_key())

    def publish(
        self, data: bytes, version: str, variant: str = "fp32",
        golden: GoldenVectors | None = None, model: str = "m",
        spans: Sequence[chunking.TensorSpan] = (), previous: tuple[Manifest, bytes] | None = None,
    ) -> Manifest:  # fmt: skip
        """Publish one file; with `previous` (a manifest and its file), deltas against it."""
        base = None
        if previous is not None:
            held, held_data = previous
            chunks = frozenset(c.digest for c in held.files[0].chunks)
            base = packing.base_of(held.version, held.files[0], held_data, chunks)
        entry = packing.pack_file(self.store, "model.onnx", data, spans, base, params=PARAMS)
        golden_ref = None
        if golden is not None:
            inputs = GoldenInputs(cases=[c.inputs for c in golden.cases])
            outputs = GoldenOutputs(cases=[c.outputs for c in golden.cases])
            golden_ref = GoldenRef(inputs=self.store.put_blob(codec.canonical_json(inputs)),
                                   outputs=self.store.put_blob(codec.canonical_json(outputs)),
                                   cases=len(golden.cases), tolerance=Tolerance())  # fmt: skip
        manifest = Manifest(model=model, version=version, variant=variant, golden=golden_ref,
                            files=[entry])  # fmt: skip
        digest, _ = self.store.put_manifest(manifest)
        entry_ = VariantEntry(name=variant, precision="fp32", manifest_digest=digest,
                              measurements=Measurements(file_bytes=len(data)))  # fmt: skip
        release = Release(model=model, version=version, variants=[entry_],
                          previous_version=previous[0].version if previous else "")  # fmt: skip
        self.store.publish(release, self.key)
        return manifest

    def desired(self, manifest: Manifest, name: str = "ns/dep", **extra: Any) -> dict[str, Any]:
        digest = "sha256:" + codec.sha256_hex(codec.canonical_json(manifest))
        return {"name": name, "model": manifest.model, "version": manifest.version,
                "variant": manifest.variant, "manifestDigest": digest,
                "storeUrl": self.root.as_uri(), "publicKey": self.public_key, **extra}  # fmt: skip
