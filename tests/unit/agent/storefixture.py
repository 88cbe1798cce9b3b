"""A tiny publisher for the agent's tests: chunks a model into a directory store and signs it.

Uses the store's own writer and chunking, so the agent reads exactly what the store writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_rollout.api.manifest import GoldenRef, GoldenVectors, Manifest, Tolerance
from edge_rollout.api.release import Measurements, Release, VariantEntry
from edge_rollout.core import chunking
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
    ) -> Manifest:  # fmt: skip
        cut = chunking.chunk_file(data, (), PARAMS)
        refs = [self.store.put_blob(data[p.offset : p.offset + p.size]) for p in cut.pieces]
        golden_ref = None
        if golden is not None:
            blob = self.store.put_blob(codec.canonical_json(golden))
            golden_ref = GoldenRef(blob=blob, cases=len(golden.cases), tolerance=Tolerance())
        manifest = Manifest(
            model=model, version=version, variant=variant, golden=golden_ref,
            files=[{"path": "model.onnx", "size": len(data), "digest": codec.sha256_hex(data),
                    "chunks": [r.model_dump() for r in refs]}],  # type: ignore[list-item]
        )  # fmt: skip
        digest, _ = self.store.put_manifest(manifest)
        entry = VariantEntry(name=variant, precision="fp32", manifest_digest=digest,
                             measurements=Measurements(file_bytes=len(data)))  # fmt: skip
        self.store.publish(Release(model=model, version=version, variants=[entry]), self.key)
        return manifest

    def desired(self, manifest: Manifest, name: str = "ns/dep", **extra: Any) -> dict[str, Any]:
        digest = "sha256:" + codec.sha256_hex(codec.canonical_json(manifest))
        return {"name": name, "model": manifest.model, "version": manifest.version,
                "variant": manifest.variant, "manifestDigest": digest,
                "storeUrl": self.root.as_uri(), "publicKey": self.public_key, **extra}  # fmt: skip
