"""`store gc`: what no published release references goes, after a grace period; the rest stays."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from edge_rollout.content.chunking import TensorSpan
from edge_rollout.store import assembly, codec, collecting
from edge_rollout.store.errors import StoreError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore
from tests.fixtures.stores import new_key, publish_files

DATA = random.Random(3).randbytes(150_000)
SPANS = [TensorSpan("w", "float32", 1000, 101_000)]
LATER = time.time() + 10_000


@pytest.fixture
def store(tmp_path: Path):
    key = new_key()
    r1 = publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": (DATA, SPANS)}})
    changed = DATA[:500] + b"edit" + DATA[504:]
    publish_files(tmp_path, key, "m", "2", {"fp32": {"model.onnx": (changed, SPANS)}}, previous=r1)
    return tmp_path, key


def _objects(root: Path) -> set[Path]:
    return {p for kind in collecting.KINDS for p in (root / kind).rglob("*") if p.is_file()}


def test_a_store_without_garbage_keeps_everything(store) -> None:
    root, _ = store
    before = _objects(root)
    assert any("manifest-deltas" in str(p) for p in before)
    result = collecting.collect(root, LATER, grace=60)
    assert result.garbage == []
    assert _objects(root) == before


def test_objects_of_a_failed_publish_are_removed_after_the_grace_period(store) -> None:
    root, key = store
    before = _objects(root)
    orphan = DirectoryStore(root).put_blob(b"left by a publish that died" * 100)
    leftover = root / "models" / "m" / ".tmp-abc"
    leftover.mkdir()
    (leftover / "index.json").write_bytes(b"{}")
    young = collecting.collect(root, time.time(), grace=3600, dry_run=True)
    assert young.garbage == []
    assert young.kept_young == 2
    result = collecting.collect(root, LATER, grace=3600)
    assert root / codec.object_path("chunks", orphan.digest) in result.garbage
    assert not leftover.exists()
    assert _objects(root) == before
    reader = StoreReader(FileTransport(root), key.public_key())
    for version in ("1", "2"):
        release = reader.fetch_release("m", version)
        assembly.assemble(reader, reader.fetch_variant(release, "fp32")[1])


def test_an_unreadable_index_stops_the_collection(store) -> None:
    root, _ = store
    orphan = DirectoryStore(root).put_blob(b"orphan" * 100)
    (root / "models/m/1/index.json").write_bytes(b"not json")
    with pytest.raises(StoreError, match="nothing was deleted"):
        collecting.collect(root, LATER, grace=0)
    assert (root / codec.object_path("chunks", orphan.digest)).exists()
