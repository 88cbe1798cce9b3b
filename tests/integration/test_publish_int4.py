"""The int4 weight-only variant (onnxruntime's MatMulNBits quantizer) on an LLM-style model: built
unasked when MatMul weights dominate, labelled int4, measured like the others, several times
smaller than fp32, and it loads in the agent's runtime and passes its own golden vectors. A
model as given in int4 is labelled int4 and not re-built; a model with no MatMul weights is
refused int4 with a message naming the flag.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import pytest

from edge_rollout.publishing import building
from edge_rollout.store import assembly, keys
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout.testing import transformer
from edge_rollout_agent import runtime
from tests.integration.store_fixtures import cli

CPU = ["CPUExecutionProvider"]
SHAPE = transformer.Shape(layers=2, hidden=128, vocab=512)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "release.key"
    assert cli("keygen", str(path)) == 0
    return path


def _publish(model: Path, store: Path, key: Path, *extra: str) -> StoreReader:
    flags = ["--name", "llm", "--version", "1.0.0", "--store", str(store), "--key", str(key)]
    assert cli("publish", str(model), *flags, "--runs", "2", *extra) == 0
    return StoreReader(FileTransport(store), keys.load_private_key(key).public_key())


def _variant_file(reader: StoreReader, variant: str, folder: Path) -> Path:
    release = reader.fetch_release("llm", "1.0.0")
    _, manifest = reader.fetch_variant(release, variant)
    files, _ = assembly.assemble(reader, manifest)
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    golden = reader.fetch_golden(manifest)
    assert golden is not None
    assert manifest.golden is not None
    check = runtime.check_model(
        folder / "model.onnx", golden, manifest.golden.tolerance, CPU, runs=1
    )
    assert check.ok, f"{variant}: {check.reason}: {check.message}"
    return folder / "model.onnx"


def test_an_llm_style_model_gets_an_int4_variant_unasked_that_loads_and_passes_its_vectors(
    key: Path, tmp_path: Path
) -> None:
    model = transformer.save(transformer.build(SHAPE), tmp_path / "llm.onnx", external=True)
    reader = _publish(model, tmp_path / "store", key)
    release = reader.fetch_release("llm", "1.0.0")
    by_name = {v.name: v for v in release.variants}
    assert list(by_name) == ["fp32", "fp16", "int8", "int4"]
    int4 = by_name["int4"]
    assert int4.precision == "int4"
    assert "MatMulNBits" in int4.built_by
    assert int4.measurements.latency_p50_ms > 0
    assert int4.measurements.measured_with == CPU
    # 4-bit weights and one float scale per 32: 0.625 bytes a weight (int8: 1, fp32: 4)
    assert int4.measurements.file_bytes < by_name["int8"].measurements.file_bytes
    assert int4.measurements.file_bytes * 5 < by_name["fp32"].measurements.file_bytes
    built = _variant_file(reader, "int4", tmp_path / "int4")
    assert f"sha256:{hashlib.sha256(built.read_bytes()).hexdigest()}" == int4.file_digest
    assert building.infer_precision(onnx.load(str(built))) == "int4"


def test_an_int4_model_is_published_as_given_and_labelled_int4(key: Path, tmp_path: Path) -> None:
    first = transformer.save(transformer.build(SHAPE), tmp_path / "llm.onnx")
    reader = _publish(first, tmp_path / "store", key, "--variants", "int4")
    given = _variant_file(reader, "int4", tmp_path / "int4")
    again = _publish(given, tmp_path / "store2", key)
    release = again.fetch_release("llm", "1.0.0")
    assert [(v.name, v.precision, v.built_by) for v in release.variants] == [
        ("int4", "int4", "as given")
    ]


def test_int4_on_a_model_with_no_matmul_weights_names_the_flag(
    key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "no-matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    flags = ["--name", "relu", "--version", "1.0.0", "--store", str(tmp_path / "s")]
    assert cli("publish", str(model), *flags, "--key", str(key), "--variants", "fp32,int4") != 0
    err = capsys.readouterr().err
    assert "int4 quantizes the weights of MatMul nodes" in err
    assert "leave int4 out of --variants" in err
    assert not (tmp_path / "s" / "relu").exists()
