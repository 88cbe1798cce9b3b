"""Installs that use the store's deltas: manifest and gap deltas, signed manifests, fallbacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.manifest import Manifest
from edge_rollout.content import chunking, fetchplan
from edge_rollout.store import codec
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout_agent import sync
from edge_rollout_agent.layout import ModelDir

from .models import golden_for, linear_model, random_weights
from .storefixture import ScratchStore
from .test_sync import CountingSource, env


class RecordingTransport(FileTransport):
    """A directory transport that records every path it serves."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.paths: list[str] = []

    def get(self, path: str, prefix: bytes = b"", size: int | None = None) -> bytes:
        self.paths.append(path)
        return super().get(path, prefix, size)


def reexport(data: bytes) -> bytes:
    """Same weights, changed graph: an Identity before the output, another producer."""
    model = onnx.load_from_string(data)
    model.producer_version = "re-exported"
    out = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = [f"{out}__pre" if n == out else n for n in node.output]
    model.graph.node.append(onnx.helper.make_node("Identity", [f"{out}__pre"], [out]))
    return bytes(model.SerializeToString())


def spans_of(data: bytes, weights: np.ndarray) -> list[chunking.TensorSpan]:
    raw = weights.astype(np.float32).tobytes()
    start = data.find(raw)
    return [chunking.TensorSpan("W", "float32", start, start + len(raw))]


@pytest.fixture
def store(tmp_path: Path) -> ScratchStore:
    return ScratchStore(tmp_path / "store")


@pytest.fixture
def reexported(store: ScratchStore, tmp_path: Path) -> tuple[Manifest, Manifest, bytes, bytes]:
    weights, bias = random_weights(256, 128, seed=0)
    v1 = linear_model(tmp_path / "v1.onnx", weights, bias)
    v2 = reexport(v1)
    golden = golden_for(weights, bias)
    m1 = store.publish(v1, "1.0", golden=golden, spans=spans_of(v1, weights))
    m2 = store.publish(v2, "2.0", golden=golden, spans=spans_of(v2, weights), previous=(m1, v1))
    return m1, m2, v1, v2


def install(store: ScratchStore, manifest: Manifest, tmp_path: Path, source: object) -> sync.Result:
    desired = DesiredModel.model_validate(store.desired(manifest))
    return sync.install(desired, env(tmp_path, source), runs=1)  # type: ignore[arg-type]


def test_a_reexport_fetches_the_manifest_delta_and_the_gap_delta_only(
    store: ScratchStore, tmp_path: Path, reexported: tuple[Manifest, Manifest, bytes, bytes]
) -> None:
    m1, m2, v1, v2 = reexported
    assert m2.files[0].gap_deltas, "the publisher made a gap delta"
    install(store, m1, tmp_path, store.reader())
    transport = RecordingTransport(store.root)
    counting = CountingSource(StoreReader(transport, store.key.public_key()))
    result = install(store, m2, tmp_path, counting)
    assert counting.fetched == [m2.files[0].gap_deltas[0].blob.digest]
    assert result.bytes_fetched == m2.files[0].gap_deltas[0].blob.stored
    manifest_paths = [p for p in transport.paths if p.startswith("manifest")]
    digest2 = store.desired(m2)["manifestDigest"][7:]
    assert manifest_paths[0].startswith(f"manifest-deltas/sha256/{digest2}/")
    assert f"manifests/sha256/{digest2}" not in transport.paths
    assert f"manifests/sha256/{digest2}.sig" in transport.paths
    current = ModelDir(tmp_path / "data", "ns/dep").base / "current" / "model.onnx"
    assert current.read_bytes() == v2 != v1


def test_without_a_held_version_the_deltas_are_ignored(
    store: ScratchStore, tmp_path: Path, reexported: tuple[Manifest, Manifest, bytes, bytes]
) -> None:
    _, m2, _, v2 = reexported
    counting = CountingSource(store.reader())
    install(store, m2, tmp_path, counting)
    golden = set(fetchplan.golden_digests(m2))  # a first install fetches its golden blobs
    assert set(counting.fetched) == {c.digest for c in m2.files[0].chunks} | golden
    current = ModelDir(tmp_path / "data", "ns/dep").base / "current" / "model.onnx"
    assert current.read_bytes() == v2


def test_a_damaged_held_file_costs_downloads_not_the_install(
    store: ScratchStore, tmp_path: Path, reexported: tuple[Manifest, Manifest, bytes, bytes]
) -> None:
    m1, m2, _, v2 = reexported
    install(store, m1, tmp_path, store.reader())
    held = ModelDir(tmp_path / "data", "ns/dep").base / "1.0-fp32" / "model.onnx"
    damaged = bytearray(held.read_bytes())
    damaged[3] ^= 0xFF  # inside the first gap chunk (the graph header)
    held.write_bytes(bytes(damaged))
    counting = CountingSource(store.reader())
    install(store, m2, tmp_path, counting)
    assert m2.files[0].chunks[0].digest in counting.fetched
    current = ModelDir(tmp_path / "data", "ns/dep").base / "current" / "model.onnx"
    assert current.read_bytes() == v2


def test_a_corrupt_manifest_delta_falls_back_to_the_whole_manifest(
    store: ScratchStore, tmp_path: Path, reexported: tuple[Manifest, Manifest, bytes, bytes]
) -> None:
    m1, m2, _, v2 = reexported
    install(store, m1, tmp_path, store.reader())
    for path in (store.root / "manifest-deltas").rglob("*"):
        if path.is_file():
            path.write_bytes(codec.compress(b"{}"))
    transport = RecordingTransport(store.root)
    install(store, m2, tmp_path, StoreReader(transport, store.key.public_key()))
    assert f"manifests/sha256/{store.desired(m2)['manifestDigest'][7:]}" in transport.paths
    current = ModelDir(tmp_path / "data", "ns/dep").base / "current" / "model.onnx"
    assert current.read_bytes() == v2


def test_an_agent_without_a_key_trusts_the_digest_and_skips_signatures(
    store: ScratchStore, tmp_path: Path, reexported: tuple[Manifest, Manifest, bytes, bytes]
) -> None:
    m1, m2, _, _ = reexported
    for sig in (store.root / "manifests/sha256").glob("*.sig"):
        sig.unlink()
    transport = RecordingTransport(store.root)
    for manifest in (m1, m2):
        install(store, manifest, tmp_path, StoreReader(transport, None))
    assert not [p for p in transport.paths if p.endswith(".sig")]


def test_an_unsigned_manifest_is_refused_by_an_agent_with_the_key(
    store: ScratchStore, tmp_path: Path, reexported: tuple[Manifest, Manifest, bytes, bytes]
) -> None:
    m1, *_ = reexported
    for sig in (store.root / "manifests/sha256").glob("*.sig"):
        sig.unlink()
    with pytest.raises(sync.SyncError) as info:
        install(store, m1, tmp_path, store.reader())
    assert info.value.reason == "ManifestInvalid"
    assert "no detached signature" in str(info.value)
