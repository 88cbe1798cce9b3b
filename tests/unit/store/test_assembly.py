"""Pulling an update: held chunks reused, changed tensors rebuilt from deltas, the rest fetched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_rollout.content import diffing
from edge_rollout.content.chunking import TensorSpan
from edge_rollout.store import assembly, codec
from edge_rollout.store.errors import VerificationError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore
from tests.fixtures.stores import new_key, publish_files

HEADER = b"graph" * 200


def model_file(weights: np.ndarray) -> tuple[bytes, list[TensorSpan]]:
    raw = weights.astype(np.float32).tobytes()
    return HEADER + raw + b"tail", [TensorSpan("w", "float32", len(HEADER), len(HEADER) + len(raw))]


@pytest.fixture
def two_versions(tmp_path: Path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(60_000).astype(np.float32)
    drifted = (w * (1 + 1e-3 * rng.standard_normal(w.size))).astype(np.float32)
    key = new_key()
    v1, v2 = model_file(w), model_file(drifted)
    r1 = publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": v1}})
    r2 = publish_files(tmp_path, key, "m", "2", {"fp32": {"model.onnx": v2}}, previous=r1)
    reader = StoreReader(FileTransport(tmp_path), key.public_key())
    held = reader.fetch_variant(r1, "fp32")[1]
    entry, wanted = reader.fetch_variant(r2, "fp32")
    return tmp_path, reader, held, wanted, v1[0], v2[0], entry


def test_a_drifted_tensor_is_pulled_as_a_delta_and_rebuilt_byte_for_byte(two_versions) -> None:
    _, reader, held, wanted, old, new, entry = two_versions
    files, plan = assembly.assemble(reader, wanted, held, {"model.onnx": old})
    assert files == {"model.onnx": new}
    assert [wanted.files[0].tensors[u.tensor].name for u in plan.deltas] == ["w"]
    assert plan.fetch_bytes < 0.7 * entry.download_bytes


def test_without_the_base_the_delta_is_ignored_and_chunks_are_fetched(two_versions) -> None:
    _, reader, _, wanted, _, new, entry = two_versions
    files, plan = assembly.assemble(reader, wanted)
    assert files == {"model.onnx": new}
    assert plan.deltas == ()
    assert plan.fetch_bytes == entry.download_bytes


def test_a_damaged_held_file_is_not_used_as_a_seed(two_versions) -> None:
    _, reader, held, wanted, old, new, _ = two_versions
    files, plan = assembly.assemble(reader, wanted, held, {"model.onnx": old[:-1] + b"X"})
    assert files == {"model.onnx": new}
    assert plan.deltas == ()
    assert plan.reused_bytes == 0


def test_a_delta_whose_result_does_not_match_is_refused(two_versions) -> None:
    root, reader, held, wanted, old, _, _ = two_versions
    blob = wanted.files[0].tensors[0].deltas[0].blob
    path = root / "chunks/sha256" / blob.digest
    residual = bytearray(codec.decompress(path.read_bytes()))
    residual[0] ^= 1
    forged = bytes(residual)
    (root / "chunks/sha256" / blob.digest).write_bytes(codec.compress(forged))
    with pytest.raises(VerificationError, match="digest check failed"):
        assembly.assemble(reader, wanted, held, {"model.onnx": old})


def test_diff_counts_reused_chunks_and_wire_bytes(two_versions) -> None:
    _, _, held, wanted, *_ = two_versions
    plain = diffing.diff_manifests(held, wanted, deltas=False)
    with_deltas = diffing.diff_manifests(held, wanted)
    assert plain.chunks_reused == with_deltas.chunks_reused >= 1
    assert with_deltas.fetch_bytes < plain.fetch_bytes
    assert diffing.diff_manifests(wanted, wanted).fetch_bytes == 0


@pytest.fixture
def regraphed(tmp_path: Path):
    """Two versions with the same tensor and a changed header (graph) and tail."""
    rng = np.random.default_rng(1)
    raw = rng.standard_normal(60_000).astype(np.float32).tobytes()
    graph, tail = rng.bytes(30_000), rng.bytes(5_000)
    old = graph + raw + tail
    new = graph[:500] + b"an edited node" + graph[500:] + raw + tail + b"output"
    span = len(graph)
    v1 = (old, [TensorSpan("w", "float32", span, span + len(raw))])
    v2 = (new, [TensorSpan("w", "float32", span + 14, span + 14 + len(raw))])
    key = new_key()
    r1 = publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": v1}})
    r2 = publish_files(tmp_path, key, "m", "2", {"fp32": {"model.onnx": v2}}, previous=r1)
    reader = StoreReader(FileTransport(tmp_path), key.public_key())
    held = reader.fetch_variant(r1, "fp32")[1]
    return tmp_path, reader, held, reader.fetch_variant(r2, "fp32")[1], old, new


def test_changed_bytes_between_tensors_come_as_one_small_gap_delta(regraphed) -> None:
    _, reader, held, wanted, old, new = regraphed
    gap = wanted.files[0].gap_deltas[0]
    assert gap.base == held.files[0].digest
    files, plan = assembly.assemble(reader, wanted, held, {"model.onnx": old})
    assert files == {"model.onnx": new}
    assert [g.delta for g in plan.gap_deltas] == [gap]
    assert plan.fetch == ()
    assert plan.fetch_bytes == gap.blob.stored < 100
    plain = diffing.diff_manifests(held, wanted, deltas=False)
    assert plain.gap_deltas == ()
    assert plain.fetch_bytes > 10 * plan.fetch_bytes


def test_without_the_base_file_the_gap_delta_is_ignored(regraphed) -> None:
    _, reader, _, wanted, _, new = regraphed
    files, plan = assembly.assemble(reader, wanted)
    assert files == {"model.onnx": new}
    assert plan.gap_deltas == ()


def test_a_gap_delta_that_does_not_rebuild_the_chunks_is_refused(regraphed) -> None:
    root, reader, held, wanted, old, _ = regraphed
    blob = wanted.files[0].gap_deltas[0].blob
    frame = codec.compress_against(b"x" * 20_000, b"")
    assert frame is not None
    gap = wanted.files[0].gap_deltas[0]
    bad = gap.model_copy(update={"blob": DirectoryStore(root).put_blob(frame)})
    assert bad.blob.digest != blob.digest
    file = wanted.files[0].model_copy(update={"gap_deltas": [bad]})
    forged = wanted.model_copy(update={"files": [file]})
    with pytest.raises(VerificationError, match="delta check failed"):
        assembly.assemble(reader, forged, held, {"model.onnx": old})


def test_the_manifest_comes_as_a_delta_against_the_held_one(regraphed) -> None:
    root, reader, held, wanted, *_ = regraphed
    digest = codec.sha256_hex(codec.canonical_json(wanted))
    stored = (root / codec.object_path("manifests", digest)).stat().st_size
    frame = reader.fetch_manifest_delta(digest, held)
    assert len(frame) < stored / 2
    assert reader.fetch_manifest(digest, held) == wanted
