"""`edge-rollout publish` with user-supplied variants and calibration inputs, read back and run.

Real models built with `onnx`, real onnxruntime measurements in child processes; an NPU variant
whose execution provider this machine lacks is published as not measured, saying why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge_rollout.content import golden
from edge_rollout.store import assembly, keys
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from tests.integration import store_fixtures
from tests.integration.store_fixtures import cli

small_model = store_fixtures.small_model


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "release.key"
    assert cli("keygen", str(path)) == 0
    return path


def publish(model: Path, store: Path, key: Path, *extra: str) -> int:
    return cli("publish", str(model), "--name", "mlp", "--version", "1.0.0", "--store", str(store),
               "--key", str(key), "--runs", "3", *extra)  # fmt: skip


def reader_for(store: Path, key: Path) -> StoreReader:
    public = keys.load_private_key(key).public_key()
    return StoreReader(FileTransport(store), public)


def test_a_supplied_cpu_variant_is_measured_like_the_built_in_ones(
    small_model: Path, key: Path, tmp_path: Path
) -> None:
    pruned = store_fixtures.build_mlp(tmp_path / "pruned.onnx", hidden=64)
    store = tmp_path / "store"
    assert publish(small_model, store, key, "--variants", "fp32",
                   "--extra-variant", f"mlp-pruned={pruned}") == 0  # fmt: skip
    reader = reader_for(store, key)
    release = reader.fetch_release("mlp", "1.0.0")
    entry, manifest = reader.fetch_variant(release, "mlp-pruned")
    m = entry.measurements
    assert (entry.precision, entry.requirements.accelerator_class) == ("fp32", "cpu")
    assert entry.built_by == "user-supplied pruned.onnx"
    assert m.measured_with == ["CPUExecutionProvider"]
    assert m.not_measured == ""
    assert m.latency_p50_ms > 0
    assert m.peak_memory_bytes > 0
    assert entry.requirements.min_memory_bytes > 0
    assert 0.0 <= (m.agreement.top1 or 0.0) <= 1.0
    assert manifest.golden is not None
    files, _ = assembly.assemble(reader, manifest)
    assert files["model.onnx"] == pruned.read_bytes()


def test_an_npu_variant_this_machine_cannot_run_is_published_as_not_measured(
    small_model: Path, key: Path, tmp_path: Path
) -> None:
    npu = store_fixtures.build_mlp(tmp_path / "npu.onnx", seed=3)
    store = tmp_path / "store"
    spec = f"int8-npu={npu}:npu:HailoExecutionProvider:int8"
    assert publish(small_model, store, key, "--variants", "fp32", "--extra-variant", spec) == 0
    reader = reader_for(store, key)
    entry, manifest = reader.fetch_variant(reader.fetch_release("mlp", "1.0.0"), "int8-npu")
    assert entry.precision == "int8"
    assert entry.requirements.accelerator_class == "npu"
    assert entry.requirements.execution_providers == ["HailoExecutionProvider"]
    assert "HailoExecutionProvider" in entry.measurements.not_measured
    assert "not run" in entry.measurements.not_measured
    assert entry.measurements.measured_with == []
    assert entry.measurements.latency_p50_ms == 0.0
    assert entry.requirements.min_memory_bytes == 0
    assert entry.measurements.file_bytes == npu.stat().st_size
    assert manifest.golden is None


def test_an_extra_variant_with_other_inputs_is_refused_and_nothing_is_published(
    small_model: Path, key: Path, tmp_path: Path
) -> None:
    other = onnx.load(str(small_model))
    other.graph.input[0].name = "pixels"
    other.graph.node[0].input[0] = "pixels"
    path = tmp_path / "other.onnx"
    onnx.save(other, str(path))
    store = tmp_path / "store"
    assert publish(small_model, store, key, "--extra-variant", f"odd={path}") == 1
    assert not (store / "models").exists()


def test_calibration_inputs_make_int8_static_and_drive_agreement(
    small_model: Path, key: Path, tmp_path: Path
) -> None:
    calib = tmp_path / "calib.npz"
    rng = np.random.default_rng(5)
    np.savez(calib, x=rng.standard_normal((16, 1, 64)).astype(np.float32))
    store = tmp_path / "store"
    assert publish(small_model, store, key, "--variants", "fp32,int8",
                   "--calibration", str(calib)) == 0  # fmt: skip
    reader = reader_for(store, key)
    entry, manifest = reader.fetch_variant(reader.fetch_release("mlp", "1.0.0"), "int8")
    assert entry.built_by == "onnxruntime static int8 (QDQ, 16 calibration samples)"
    data = assembly.assemble(reader, manifest)[0]["model.onnx"]
    ops = {n.op_type for n in onnx.load_from_string(data).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert entry.measurements.agreement.cosine > 0.95
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    vectors = reader.fetch_golden(manifest)
    assert vectors is not None
    feed = golden.feed(vectors.cases[0])
    assert np.allclose(feed["x"], np.load(calib)["x"][0])
    assert session.run(None, feed)[0].shape == (1, 10)
