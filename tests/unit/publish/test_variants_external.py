"""The variant builders on a transformer-like model whose weights are external data: each writes
its variant to a file, with the weights in one `<file>.data` beside it when they are above
EXTERNAL_DATA_ABOVE (patched low here) and inside the file otherwise (the bytes protobuf itself
would write); onnxruntime loads the variant from its file alone (the source removed) and agrees
with the float32 model."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.publishing import onnxmodel, variants
from edge_rollout.testing import transformer

SHAPE = transformer.Shape(layers=2, hidden=256, vocab=4096)  # 14.7 MB of float32 weights
INPUT = {"input_ids": np.arange(0, 4096, 101, dtype=np.int64)[:40].reshape(2, 20)}
FEEDS = [{"input_ids": np.arange(i, i + 40, dtype=np.int64).reshape(2, 20)} for i in range(4)]
Builder = Callable[[Path, Path], None]
BUILDERS: dict[str, tuple[Builder, float]] = {
    # builder, and the largest error it may make, relative to the largest float32 logit
    "fp16": (variants.build_fp16, 0.005),
    "int8": (variants.build_int8, 0.1),
    "int8-static": (lambda src, out: variants.build_int8_static(src, FEEDS, out), 0.2),
    "int4": (variants.build_int4, 0.4),
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    return transformer.save(transformer.build(SHAPE), folder / "llm.onnx", external=True)


@pytest.fixture(scope="module")
def expected(source: Path) -> np.ndarray:
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, INPUT)[0])


def _built(name: str, source: Path, tmp_path: Path) -> Path:
    """The variant built from a private copy of `source`, which is then removed."""
    copy = tmp_path / "src"
    shutil.copytree(source.parent, copy)
    out = tmp_path / "out" / f"{name}.onnx"
    out.parent.mkdir()
    BUILDERS[name][0](copy / source.name, out)
    shutil.rmtree(copy)
    return out


def _agrees(name: str, out: Path, expected: np.ndarray) -> None:
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = np.asarray(session.run(None, INPUT)[0])
    assert got.shape == expected.shape
    error = float(np.abs(got - expected).max() / np.abs(expected).max())
    assert error < BUILDERS[name][1], f"{name}: relative error {error:.4f}"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_large_variant_keeps_its_weights_in_one_data_file_beside_it(
    name: str,
    source: Path,
    expected: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(variants, "EXTERNAL_DATA_ABOVE", 1 << 20)
    out = _built(name, source, tmp_path)
    files = onnxmodel.external_files(onnxmodel.load(out))
    assert [f.path for f in files] == [f"{name}.onnx.data"]
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name, f"{name}.onnx.data"]
    assert variants.data_file(out).stat().st_size > 1 << 20
    assert out.stat().st_size < 1 << 20  # the graph alone
    _agrees(name, out, expected)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_a_variant_below_the_threshold_is_one_file_written_as_protobuf_would(
    name: str, source: Path, expected: np.ndarray, tmp_path: Path
) -> None:
    out = _built(name, source, tmp_path)
    assert onnxmodel.external_files(onnxmodel.load(out)) == []
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    assert out.stat().st_size > SHAPE.weight_bytes // 10  # int4 is the smallest, ~1/7
    assert onnx.load(str(out)).SerializeToString() == out.read_bytes()  # as protobuf writes it
    _agrees(name, out, expected)


def test_fp16_stores_each_weight_once_as_float16(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(variants, "EXTERNAL_DATA_ABOVE", 0)
    out = tmp_path / "fp16.onnx"
    variants.build_fp16(source, out)
    stored = variants.data_file(out).stat().st_size
    assert SHAPE.weight_bytes // 2 <= stored < SHAPE.weight_bytes // 2 + 40 * 4096  # + alignment


def _constant_and_subgraph_weights(folder: Path) -> Path:
    """x @ c (c a Constant node) and an If whose branch returns its own initializer, every
    weight of at least 1 KB in external data (Constant values too)."""
    rng = np.random.default_rng(0)
    value = numpy_helper.from_array(rng.standard_normal((64, 64), np.float32), "c")
    branch = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["z_branch"])],
        "branch",
        [],
        [helper.make_tensor_value_info("z_branch", TensorProto.FLOAT, [64, 64])],
        [numpy_helper.from_array(rng.standard_normal((64, 64), np.float32), "w")],
    )
    nodes = [
        helper.make_node("Constant", [], ["c"], value=value),
        helper.make_node("MatMul", ["x", "c"], ["y"]),
        helper.make_node("If", ["cond"], ["z"], then_branch=branch, else_branch=branch),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [64, 64]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "m.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.data",
        convert_attribute=True,
    )
    return path


@pytest.mark.parametrize("above", [0, 1 << 30], ids=["external", "inline"])
@pytest.mark.parametrize("name", ["fp16", "int8"])
def test_constant_and_subgraph_weights_in_external_data_move_with_the_variant(
    name: str, above: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(variants, "EXTERNAL_DATA_ABOVE", above)
    (tmp_path / "src").mkdir()
    source = _constant_and_subgraph_weights(tmp_path / "src")
    assert len(onnxmodel.external_files(onnxmodel.load(source))[0].spans) == 3  # c, w, w
    x = np.random.default_rng(1).standard_normal((2, 64), np.float32)
    feed = {"x": x, "cond": np.array(True)}
    want = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, feed)
    out = tmp_path / "out" / "v.onnx"
    out.parent.mkdir()
    BUILDERS[name][0](source, out)
    shutil.rmtree(tmp_path / "src")
    files = [f.path for f in onnxmodel.external_files(onnxmodel.load(out))]
    assert files == (["v.onnx.data"] if above == 0 else [])
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feed)
    for g, w in zip(got, want, strict=True):
        assert float(np.abs(g - w).max() / np.abs(w).max()) < BUILDERS[name][1]
