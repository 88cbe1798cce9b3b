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
