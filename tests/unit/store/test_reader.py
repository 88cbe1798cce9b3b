"""The verifying reader over a directory store: good releases read back, bad ones are refused."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_rollout.api.manifest import ChunkRef
from edge_rollout.api.release import Release
from edge_rollout.content.chunking import TensorSpan
from edge_rollout.store import assembly, codec, keys
from edge_rollout.store.errors import NotFoundError, StoreError, VerificationError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport, open_transport
from tests.fixtures.stores import new_key, publish_files

DATA = random.Random(0).randbytes(120_000)
SPANS = [TensorSpan("w", "float32", 1000, 101_000)]


@pytest.fixture
def published(tmp_path: Path):
    key = new_key()
    release = publish_files(tmp_path, key, "m", "1.0", {"fp32": {"model.onnx": (DATA, SPANS)}})
    reader = StoreReader(FileTransport(tmp_path), key.public_key())
    return tmp_path, key, release, reader


def _manifest_path(root: Path, release: Release) -> Path:
    return root / "manifests/sha256" / release.variants[0].manifest_digest.removeprefix("sha256:")


def test_a_published_release_reads_back_and_reassembles_byte_for_byte(published) -> None:
    _root, _key, release, reader = published
    got = reader.fetch_release("m", "1.0")
    assert got == release
    _, manifest = reader.fetch_variant(got, "fp32")
    files, plan = assembly.assemble(reader, manifest)
    assert files == {"model.onnx": DATA}
    assert plan.fetch_bytes == release.variants[0].download_bytes


def test_open_accepts_a_file_url_and_a_base64_key(published) -> None:
    root, key, _, _ = published
    reader = StoreReader.open(root.as_uri(), keys.public_key_b64(key.public_key()))
    assert reader.fetch_release("m", "1.0").model == "m"


def test_a_wrong_key_is_refused(published) -> None:
    root, *_ = published
    reader = StoreReader(FileTransport(root), new_key().public_key())
    with pytest.raises(
        VerificationError, match=r"trust check failed.*no signature by a trusted key.*trustedKeys"
    ):
        reader.fetch_release("m", "1.0")


def test_a_tampered_index_is_refused(published) -> None:
    root, _, _, reader = published
    index = root / "models/m/1.0/index.json"
    index.write_bytes(index.read_bytes().replace(b'"m"', b'"n"'))
    with pytest.raises(VerificationError) as err:
        reader.fetch_release("m", "1.0")
    assert err.value.check == "signature"
    assert err.value.path.endswith("models/m/1.0/index.json")


def test_a_tampered_manifest_is_refused(published) -> None:
    root, _, release, reader = published
    path = _manifest_path(root, release)
    plain = codec.decompress(path.read_bytes()).replace(b'"1.0"', b'"1.1"')
    path.write_bytes(codec.compress(plain))
    with pytest.raises(VerificationError, match="digest check failed"):
        reader.fetch_variant(release, "fp32")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: codec.compress(codec.decompress(b)[:-1] + b"x"), id="altered"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_a_damaged_chunk_is_refused(published, damage) -> None:
    root, _, release, reader = published
    _, manifest = reader.fetch_variant(release, "fp32")
    ref = manifest.files[0].chunks[0]
    path = root / "chunks/sha256" / ref.digest
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(VerificationError) as err:
        reader.fetch_chunk(ref)
    assert ref.digest in err.value.path
    assert err.value.check in {"digest", "decompress", "size"}


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a" * 63 + "/", "A" * 64])
def test_path_like_chunk_names_are_refused_before_any_fetch(published, name: str) -> None:
    *_, reader = published
    ref = ChunkRef.model_construct(digest=name, size=1, stored=1)
    with pytest.raises(VerificationError, match="name check failed"):
        reader.fetch_chunk(ref)


def test_a_manifest_with_a_path_like_chunk_name_is_refused_even_when_signed(published) -> None:
    root, key, release, reader = published
    path = _manifest_path(root, release)
    plain = codec.decompress(path.read_bytes())
    manifest = release.variants[0]
    digest = manifest.manifest_digest.removeprefix("sha256:")
    first = plain.index(b'"digest":"') + len(b'"digest":"')
    hostile = plain[:first] + b"../../../../etc/passwd" + plain[first + 64 :]
    hex_digest = codec.sha256_hex(hostile)
    (root / "manifests/sha256" / hex_digest).write_bytes(codec.compress(hostile))
    (root / "manifests/sha256" / f"{hex_digest}.sig").write_bytes(keys.sign(key, hostile))
    assert digest != hex_digest
    with pytest.raises(VerificationError, match="schema check failed"):
        reader.fetch_manifest(hex_digest)


@pytest.mark.parametrize(
    ("model", "version"), [("..", "1.0"), ("m", "../1.0"), ("m/x", "1"), ("", "1")]
)
def test_path_like_model_and_version_names_are_refused(published, model: str, version: str) -> None:
    *_, reader = published
    with pytest.raises(VerificationError, match="name check failed"):
        reader.fetch_release(model, version)


def test_a_missing_release_says_how_to_fix_it(published) -> None:
    *_, reader = published
    with pytest.raises(NotFoundError, match="publish it first"):
        reader.fetch_release("m", "9.9")


def test_an_unknown_variant_lists_the_ones_there_are(published) -> None:
    *_, release, reader = published
    with pytest.raises(StoreError, match="has fp32"):
        reader.fetch_variant(release, "int4")


def test_unsupported_url_schemes_are_refused() -> None:
    with pytest.raises(StoreError, match="file:///absolute/path"):
        open_transport("ftp://example.com/store")


def test_every_manifest_has_a_detached_signature_by_the_release_key(published) -> None:
    root, key, release, _ = published
    hex_digest = release.variants[0].manifest_digest.removeprefix("sha256:")
    sig = (root / codec.signature_path(hex_digest)).read_bytes()
    plain = codec.decompress(_manifest_path(root, release).read_bytes())
    assert keys.verify(key.public_key(), plain, sig)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        pytest.param(lambda p: p.unlink(), "no detached signature", id="missing"),
        pytest.param(
            lambda p: p.write_bytes(keys.sign(new_key(), b"other")), "not a valid", id="forged"
        ),
    ],
)
def test_a_manifest_whose_signature_does_not_verify_is_refused(published, damage, problem) -> None:
    root, _, release, reader = published
    damage(root / codec.signature_path(release.variants[0].manifest_digest[7:]))
    with pytest.raises(VerificationError, match=problem) as err:
        reader.fetch_variant(release, "fp32")
    assert err.value.check == "signature"
    assert err.value.path.endswith(".sig")


def test_a_reader_without_a_key_reads_manifests_by_digest_but_no_index(published) -> None:
    root, _, release, _ = published
    for sig in (root / "manifests/sha256").glob("*.sig"):
        sig.unlink()
    reader = StoreReader.open(root.as_uri(), "")
    assert reader.fetch_manifest(release.variants[0].manifest_digest).model == "m"
    with pytest.raises(VerificationError, match=r"key check failed.*trustedKeys or publicKey"):
        reader.fetch_release("m", "1.0")
