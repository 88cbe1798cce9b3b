"""Files read in place: a mapped file reads as its bytes before and after its pages are dropped,
and packing it gives the same manifest entry as packing its bytes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edge_rollout.content.chunking import TensorSpan
from edge_rollout.publishing import files, packing
from edge_rollout.store.writer import DirectoryStore


def test_a_mapped_file_reads_as_its_bytes_after_its_pages_are_dropped(tmp_path: Path) -> None:
    data = os.urandom(3 * files.READ_BLOCK + 17)
    path = tmp_path / "model.onnx.data"
    path.write_bytes(data)
    with files.mapped(path) as mapped:
        assert len(mapped) == len(data)
        assert mapped[5:9] == data[5:9]
        files.drop_pages(mapped)
        assert mapped.find(data[1000:1040]) == 1000
        assert hashlib.sha256(mapped).hexdigest() == files.sha256_hex(path)
    assert files.sha256_hex(path) == hashlib.sha256(data).hexdigest()


def test_an_empty_file_maps_to_no_bytes(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    with files.mapped(tmp_path / "empty") as mapped:
        assert mapped == b""
    files.drop_pages(b"plain bytes are left alone")


def test_packing_a_mapped_file_gives_the_entry_of_its_bytes(tmp_path: Path) -> None:
    data = os.urandom(300_000) + bytes(200_000) + os.urandom(100_000)
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    spans = [TensorSpan("w", "float32", 300_000, 500_000)]
    from_bytes = packing.pack_file(DirectoryStore(tmp_path / "a"), "w.bin", data, spans)
    with files.mapped(path) as mapped:
        from_map = packing.pack_file(DirectoryStore(tmp_path / "b"), "w.bin", mapped, spans)
    assert from_map == from_bytes
