"""Pulling an update: held chunks reused, changed tensors rebuilt from deltas, the rest fetched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_rollout.core import diffing
from edge_rollout.core.chunking import TensorSpan
from edge_rollout.store import assembly, codec
from edge_rollout.store.errors import VerificationError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
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
