"""Publish real ONNX models, serve the store with nginx on loopback, read back and verify.

Small models built with `onnx` and magika's classifier from its PyPI wheel; every variant must
reassemble byte for byte, load in onnxruntime and pass its golden vectors; damaged or unsigned
content must be refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnxruntime as ort
import pytest

from edge_rollout.content import golden
from edge_rollout.publishing import feeding, measuring
from edge_rollout.store import assembly, codec, keys
from edge_rollout.store.errors import StoreError, VerificationError
from edge_rollout.store.http import HttpTransport
from edge_rollout.store.reader import StoreReader
from tests.integration import store_fixtures
from tests.integration.store_fixtures import cli

nginx = store_fixtures.nginx
magika_model = store_fixtures.magika_model
small_model = store_fixtures.small_model


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "release.key"
    assert cli("keygen", str(path)) == 0
    return path


def public_pem(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text()


def publish(model: Path, store: Path, key: Path, name: str, version: str, variants: str) -> None:
    code = cli(
        "publish",
        str(model),
        "--name",
        name,
        "--version",
        version,
        "--variants",
        variants,
        "--store",
        str(store),
        "--key",
        str(key),
        "--runs",
        "5",
    )
    assert code == 0


def run_golden(reader: StoreReader, manifest, model_bytes: bytes) -> None:
    vectors = reader.fetch_golden(manifest)
    assert vectors is not None
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for case in vectors.cases:
        outputs = dict(zip(names, session.run(None, golden.feed(case)), strict=True))
        assert golden.mismatches(outputs, case, manifest.golden.tolerance) == []


def test_small_model_variants_read_back_through_nginx_and_pass_their_golden_vectors(
    nginx, small_model: Path, key: Path, capsys
) -> None:
    publish(small_model, nginx.root, key, "mlp", "1.0.0", "fp32,fp16,int8")
    assert "kind: ModelDeployment" in capsys.readouterr().out
    reader = StoreReader.open(nginx.url, public_pem(key))
    release = reader.fetch_release("mlp", "1.0.0")
    assert [v.name for v in release.variants] == ["fp32", "fp16", "int8"]
    for entry in release.variants:
        _, manifest = reader.fetch_variant(release, entry.name)
        files, _ = assembly.assemble(reader, manifest)
        data = files["model.onnx"]
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == entry.file_digest
        assert entry.measurements.file_bytes == len(data)
        assert entry.measurements.agreement.cosine > 0.99
        run_golden(reader, manifest, data)
    assert files is not None
    fp32 = assembly.assemble(reader, reader.fetch_variant(release, "fp32")[1])[0]["model.onnx"]
    assert fp32 == small_model.read_bytes()


def test_measurements_match_a_fresh_measurement(
    nginx, small_model: Path, key: Path, tmp_path: Path
) -> None:
    publish(small_model, nginx.root, key, "mlp", "1.0.0", "fp32,int8")
    reader = StoreReader.open(nginx.url, public_pem(key))
    release = reader.fetch_release("mlp", "1.0.0")
    entry, manifest = reader.fetch_variant(release, "int8")
    path = tmp_path / "int8.onnx"
    path.write_bytes(assembly.assemble(reader, manifest)[0]["model.onnx"])
    shapes = {name: tuple(s) for name, s in entry.measurements.input_shapes.items()}
    feeds = feeding.sample_inputs(manifest.onnx.inputs, 4, shapes)
    fresh = measuring.measure(path, feeds, runs=5)
    recorded = entry.measurements.peak_memory_bytes
    assert abs(fresh.peak_memory_bytes - recorded) <= max(0.5 * recorded, 16 << 20)


def test_magika_from_its_wheel_reassembles_byte_for_byte_through_nginx(
    nginx, magika_model: Path, key: Path
) -> None:
    publish(magika_model, nginx.root, key, "magika", "1.0.3", "fp32,fp16,int8")
    reader = StoreReader.open(nginx.url, public_pem(key))
    release = reader.fetch_release("magika", "1.0.3")
    entry, manifest = reader.fetch_variant(release, "fp32")
    files, plan = assembly.assemble(reader, manifest)
    assert files["model.onnx"] == magika_model.read_bytes()
    assert plan.fetch_bytes == entry.download_bytes < len(files["model.onnx"])
    assert len(manifest.files[0].tensors) >= 3
    for name in ("fp16", "int8"):
        _, m = reader.fetch_variant(release, name)
        run_golden(reader, m, assembly.assemble(reader, m)[0]["model.onnx"])
    assert cli("store", "verify", str(nginx.root), "--public-key", str(key) + ".pub") == 0


def test_a_drifted_release_is_pulled_as_tensor_deltas_through_nginx(
    nginx, key: Path, tmp_path: Path
) -> None:
    v1 = store_fixtures.build_mlp(tmp_path / "v1.onnx", hidden=512)
    v2 = store_fixtures.build_mlp(tmp_path / "v2.onnx", hidden=512, seed=1, base_seed=0, scale=1e-3)
    publish(v1, nginx.root, key, "mlp", "1", "fp32")
    publish(v2, nginx.root, key, "mlp", "2", "fp32")
    reader = StoreReader.open(nginx.url, public_pem(key))
    held = reader.fetch_variant(reader.fetch_release("mlp", "1"), "fp32")[1]
    entry, wanted = reader.fetch_variant(reader.fetch_release("mlp", "2"), "fp32")
    files, plan = assembly.assemble(reader, wanted, held, {"model.onnx": v1.read_bytes()})
    assert files["model.onnx"] == v2.read_bytes()
    assert plan.deltas
    assert plan.fetch_bytes < 0.7 * entry.download_bytes
    assert (
        cli("diff", "mlp@1", "mlp@2", "--store", nginx.url, "--public-key", str(key) + ".pub") == 0
    )


def test_store_verify_over_http_follows_previous_versions_and_checks_manifest_deltas(
    nginx, key: Path, tmp_path: Path, capsys
) -> None:
    v1 = store_fixtures.build_mlp(tmp_path / "v1.onnx", hidden=512)
    v2 = store_fixtures.build_mlp(tmp_path / "v2.onnx", hidden=512, seed=1, base_seed=0, scale=1e-3)
    publish(v1, nginx.root, key, "mlp", "1", "fp32")
    publish(v2, nginx.root, key, "mlp", "2", "fp32")
    pub = str(key) + ".pub"
    assert cli("store", "verify", nginx.url, "--public-key", pub) == 1
    assert "cannot be listed" in capsys.readouterr().out
    assert cli("store", "verify", nginx.url, "--public-key", pub, "--release", "mlp@2") == 0
    assert "2 release(s) checked, 0 problem(s)" in capsys.readouterr().out
    (delta,) = [p for p in (nginx.root / "manifest-deltas").rglob("*") if p.is_file()]
    delta.write_bytes(codec.compress(b"{}"))
    assert cli("store", "verify", nginx.url, "--public-key", pub, "--release", "mlp@2") == 1
    assert "manifest delta does not rebuild the manifest" in capsys.readouterr().out


def test_a_partial_chunk_download_resumes_with_a_range_request(
    nginx, small_model: Path, key: Path
) -> None:
    publish(small_model, nginx.root, key, "mlp", "1.0.0", "fp32")
    reader = StoreReader.open(nginx.url, public_pem(key))
    _, manifest = reader.fetch_variant(reader.fetch_release("mlp", "1.0.0"), "fp32")
    ref = max(manifest.files[0].chunks, key=lambda c: c.stored)
    stored = (nginx.root / "chunks/sha256" / ref.digest).read_bytes()
    assert reader.fetch_chunk(ref, prefix=stored[: len(stored) // 2]) == reader.fetch_chunk(ref)
    assert '" 206 ' in nginx.access_log.read_text()


def _tamper_index(root: Path, manifest_digest: str, chunk: str) -> None:
    index = root / "models/mlp/1.0.0/index.json"
    index.write_bytes(index.read_bytes().replace(b'"fp32"', b'"fp32 "', 1))


def _tamper_manifest(root: Path, manifest_digest: str, chunk: str) -> None:
    path = root / "manifests/sha256" / manifest_digest
    path.write_bytes(codec.compress(codec.decompress(path.read_bytes()).replace(b"mlp", b"mLp")))


def _drop_manifest_signature(root: Path, manifest_digest: str, chunk: str) -> None:
    (root / codec.signature_path(manifest_digest)).unlink()


def _tamper_chunk(root: Path, manifest_digest: str, chunk: str) -> None:
    path = root / "chunks/sha256" / chunk
    plain = bytearray(codec.decompress(path.read_bytes()))
    plain[len(plain) // 2] ^= 0xFF
    path.write_bytes(codec.compress(bytes(plain)))


def _truncate_chunk(root: Path, manifest_digest: str, chunk: str) -> None:
    path = root / "chunks/sha256" / chunk
    path.write_bytes(path.read_bytes()[:-10])


def _path_like_chunk_name(root: Path, manifest_digest: str, chunk: str) -> None:
    path = root / "manifests/sha256" / manifest_digest
    hostile = codec.decompress(path.read_bytes()).replace(
        chunk.encode(), b"../../../etc/passwd" + b"0" * 45
    )
    path.write_bytes(codec.compress(hostile))
    # re-sign an index pointing at the hostile manifest so only the name check can catch it
    (root / "manifests/sha256" / codec.sha256_hex(hostile)).write_bytes(codec.compress(hostile))
    index = root / "models/mlp/1.0.0/index.json"
    index.write_bytes(
        index.read_bytes().replace(manifest_digest.encode(), codec.sha256_hex(hostile).encode())
    )


@pytest.mark.parametrize(
    ("damage", "check"),
    [
        pytest.param(_tamper_index, "signature", id="tampered-index"),
        pytest.param(_tamper_manifest, "digest", id="tampered-manifest"),
        pytest.param(_drop_manifest_signature, "signature", id="unsigned-manifest"),
        pytest.param(_tamper_chunk, "digest", id="tampered-chunk"),
        pytest.param(_truncate_chunk, "decompress", id="truncated-chunk"),
    ],
)
def test_damaged_content_served_by_nginx_is_refused(
    nginx, small_model: Path, key: Path, damage, check: str
) -> None:
    publish(small_model, nginx.root, key, "mlp", "1.0.0", "fp32")
    reader = StoreReader.open(nginx.url, public_pem(key))
    release = reader.fetch_release("mlp", "1.0.0")
    _, manifest = reader.fetch_variant(release, "fp32")
    chunk = manifest.files[0].chunks[0].digest
    damage(nginx.root, release.variants[0].manifest_digest.removeprefix("sha256:"), chunk)

    def pull() -> None:
        fresh = reader.fetch_release("mlp", "1.0.0")
        assembly.assemble(reader, reader.fetch_variant(fresh, "fp32")[1])

    with pytest.raises(VerificationError) as err:
        pull()
    assert err.value.check == check
    assert "http://127.0.0.1" in err.value.path


def test_a_manifest_with_a_path_like_chunk_name_is_refused_even_when_signed(
    nginx, small_model: Path, key: Path
) -> None:
    publish(small_model, nginx.root, key, "mlp", "1.0.0", "fp32")
    reader = StoreReader.open(nginx.url, public_pem(key))
    release = reader.fetch_release("mlp", "1.0.0")
    _, manifest = reader.fetch_variant(release, "fp32")
    _path_like_chunk_name(
        nginx.root,
        release.variants[0].manifest_digest.removeprefix("sha256:"),
        manifest.files[0].chunks[0].digest,
    )
    index = nginx.root / "models/mlp/1.0.0/index.json"
    private = keys.load_private_key(key)
    (index.parent / "index.json.sig").write_bytes(keys.sign(private, index.read_bytes()))
    release = reader.fetch_release("mlp", "1.0.0")
    hostile = release.variants[0].manifest_digest.removeprefix("sha256:")
    plain = codec.decompress((nginx.root / "manifests/sha256" / hostile).read_bytes())
    (nginx.root / codec.signature_path(hostile)).write_bytes(keys.sign(private, plain))
    with pytest.raises(VerificationError, match=r"schema check failed.*digest"):
        reader.fetch_variant(release, "fp32")


def test_a_wrong_key_is_refused_over_http(
    nginx, small_model: Path, key: Path, tmp_path: Path
) -> None:
    publish(small_model, nginx.root, key, "mlp", "1.0.0", "fp32")
    other = tmp_path / "other.key"
    cli("keygen", str(other))
    reader = StoreReader.open(nginx.url, public_pem(other))
    with pytest.raises(VerificationError, match=r"trust check failed: .* by a trusted key"):
        reader.fetch_release("mlp", "1.0.0")


def test_http_errors_name_the_url_and_what_to_do(nginx) -> None:
    transport = HttpTransport(nginx.url, retries=0, resumes=0)
    with pytest.raises(StoreError, match=r"127\.0\.0\.1.*HTTP 404.*publish it first"):
        transport.get("models/none/1/index.json")
