"""The directory writer: atomic, immutable releases; content-addressed objects."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from edge_rollout.api.manifest import FileEntry, Manifest
from edge_rollout.api.release import Measurements, Release, VariantEntry
from edge_rollout.cli.main import build_parser
from edge_rollout.content.chunking import TensorSpan
from edge_rollout.store import codec, keys
from edge_rollout.store.errors import StoreError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore
from tests.fixtures.stores import new_key, publish_files

DATA = random.Random(1).randbytes(40_000)


def test_objects_are_named_by_the_digest_of_their_plain_bytes_and_stored_zstd(
    tmp_path: Path,
) -> None:
    ref = DirectoryStore(tmp_path).put_blob(b"hello" * 1000)
    stored = (tmp_path / "chunks/sha256" / ref.digest).read_bytes()
    assert ref.digest == codec.sha256_hex(b"hello" * 1000)
    assert codec.decompress(stored) == b"hello" * 1000
    assert ref.stored == len(stored) < ref.size


def test_republishing_the_same_content_is_a_no_op(tmp_path: Path) -> None:
    key = new_key()
    release = publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": (DATA, [])}})
    assert DirectoryStore(tmp_path).publish(release, key) is False


def test_republishing_a_version_with_other_content_is_refused(tmp_path: Path) -> None:
    key = new_key()
    publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": (DATA, [])}})
    before = (tmp_path / "models/m/1/index.json").read_bytes()
    with pytest.raises(StoreError, match=r"already published with other content.*new version"):
        publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": (DATA[::-1], [])}})
    assert (tmp_path / "models/m/1/index.json").read_bytes() == before


def test_a_publish_that_fails_half_way_leaves_no_visible_release(
    tmp_path: Path, monkeypatch
) -> None:
    store = DirectoryStore(tmp_path)
    manifest = Manifest(
        model="m",
        version="1",
        variant="fp32",
        files=[FileEntry(path="model.onnx", size=0, digest=codec.sha256_hex(b""))],
    )
    entry = VariantEntry(
        name="fp32",
        precision="fp32",
        manifest_digest=store.put_manifest(manifest)[0],
        measurements=Measurements(file_bytes=1),
    )
    release = Release(model="m", version="1", variants=[entry])

    def broken_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(StoreError, match="cannot move the release into place"):
        store.publish(release, new_key())
    assert not (tmp_path / "models/m/1").exists()
    assert list((tmp_path / "models/m").iterdir()) == []


def test_an_unwritable_store_is_refused_before_any_work(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a directory")
    with pytest.raises(StoreError, match="writable check failed"):
        DirectoryStore(target / "store").check_writable()


def test_an_index_naming_a_manifest_that_is_not_stored_is_refused(tmp_path: Path) -> None:
    entry = VariantEntry(
        name="fp32",
        precision="fp32",
        manifest_digest="sha256:" + "0" * 64,
        measurements=Measurements(file_bytes=1),
    )
    with pytest.raises(StoreError, match="names a manifest that is not in the store"):
        DirectoryStore(tmp_path).publish(
            Release(model="m", version="1", variants=[entry]), new_key()
        )
    assert not (tmp_path / "models/m/1").exists()


def test_store_sign_adds_the_signatures_and_manifest_deltas_older_releases_lack(
    tmp_path: Path,
) -> None:
    key = new_key()
    r1 = publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": (DATA, [])}})
    changed: tuple[bytes, list[TensorSpan]] = (DATA[:100] + b"x" + DATA[101:], [])
    publish_files(tmp_path, key, "m", "2", {"fp32": {"model.onnx": changed}}, previous=r1)
    for path in [*tmp_path.glob("manifests/sha256/*.sig"), *tmp_path.rglob("manifest-deltas/*")]:
        if path.is_file():
            path.unlink()
    reader = StoreReader(FileTransport(tmp_path), key.public_key())
    release = reader.fetch_release("m", "2")
    with pytest.raises(StoreError, match="store sign"):
        reader.fetch_variant(release, "fp32")
    key_file = tmp_path / "release.key"
    key_file.write_bytes(keys.private_key_pem(key))
    args = build_parser().parse_args(["store", "sign", str(tmp_path), "--key", str(key_file)])
    assert args.handler(args) == 0
    assert reader.fetch_variant(release, "fp32")[1].version == "2"
    assert [p for p in tmp_path.rglob("manifest-deltas/*/*/*") if p.is_file()]


def test_a_missing_index_signature_is_reported_as_such_and_store_sign_index_restores_it(
    tmp_path: Path,
) -> None:
    key = new_key()
    publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": (DATA, [])}})
    (tmp_path / "models/m/1/index.json.sig").unlink()
    reader = StoreReader(FileTransport(tmp_path), key.public_key())
    with pytest.raises(StoreError) as err:
        reader.fetch_release("m", "1")
    assert err.value.check == "signature"
    assert "no detached signature" in str(err.value)
    assert "store sign STORE --key KEY --index m@1" in str(err.value)
    key_file = tmp_path / "release.key"
    key_file.write_bytes(keys.private_key_pem(key))
    argv = ["store", "sign", str(tmp_path), "--key", str(key_file), "--index", "m@1"]
    args = build_parser().parse_args(argv)
    assert args.handler(args) == 0
    assert reader.fetch_release("m", "1").version == "1"


def test_store_sign_index_never_replaces_a_signature_that_fails(tmp_path: Path) -> None:
    key = new_key()
    publish_files(tmp_path, key, "m", "1", {"fp32": {"model.onnx": (DATA, [])}})
    index = tmp_path / "models/m/1/index.json"
    index.write_bytes(index.read_bytes().replace(b'"fp32"', b'"fp32" '))
    sig = (tmp_path / "models/m/1/index.json.sig").read_bytes()
    with pytest.raises(StoreError, match="republish under a new version"):
        DirectoryStore(tmp_path).sign_index("m", "1", key)
    assert (tmp_path / "models/m/1/index.json.sig").read_bytes() == sig
