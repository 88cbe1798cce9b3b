"""`packing.pack_golden`: two content-addressed blobs, inputs shared, the budget honoured."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_rollout.api.manifest import FileEntry, Manifest
from edge_rollout.content import golden
from edge_rollout.publishing import packing
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore

FEEDS = [{"x": np.full((64, 64), i, dtype=np.float32)} for i in range(2)]  # 16 KiB per case


def outputs(shift: float) -> list[dict[str, np.ndarray]]:
    return [{"y": np.linspace(0, 1, 100, dtype=np.float32) + shift + i} for i in range(2)]


def test_inputs_are_one_blob_across_releases_and_outputs_their_own(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, level=3)
    a = packing.pack_golden(store, "fp32", FEEDS, outputs(0.0), budget=1 << 20)
    b = packing.pack_golden(store, "fp32", FEEDS, outputs(0.5), budget=1 << 20)
    assert (a.cases, b.cases) == (2, 2)
    assert a.inputs == b.inputs
    assert a.outputs != b.outputs
    assert a.blob is None


def test_over_the_budget_fewer_cases_never_none(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, level=3)
    one = packing.pack_golden(store, "fp32", FEEDS, outputs(0.0), budget=20_000)
    assert one.cases == 1
    still_one = packing.pack_golden(store, "fp32", FEEDS, outputs(0.0), budget=10)
    assert still_one.cases == 1
    assert still_one.inputs is not None
    assert still_one.inputs.size < 2 * FEEDS[0]["x"].nbytes


def test_the_stored_vectors_read_back_and_pass_against_the_exact_outputs(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, level=3)
    ref = packing.pack_golden(store, "fp32", FEEDS, outputs(0.0), budget=1 << 20)
    entry = FileEntry(path="model.onnx", size=0, digest="0" * 64, chunks=[])
    manifest = Manifest(model="m", version="1", variant="fp32", files=[entry], golden=ref)
    vectors = StoreReader(FileTransport(tmp_path), None).fetch_golden(manifest)
    assert vectors is not None
    for case, expected in zip(vectors.cases, outputs(0.0), strict=True):
        assert golden.mismatches(expected, case, ref.tolerance) == []
        assert golden.mismatches({"y": expected["y"] * 1.01}, case, ref.tolerance) != []
