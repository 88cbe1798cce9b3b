"""The publisher's gathering step: extra-variant specs, precision read from a model, calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.api.manifest import TensorInfo
from edge_rollout.publishing import building, calibration, request
from edge_rollout.publishing.onnxmodel import ModelError
from edge_rollout.testing import transformer


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            "int8-npu=model_hailo.onnx:npu:HailoExecutionProvider:int8",
            ("int8-npu", "model_hailo.onnx", "npu", ("HailoExecutionProvider",), "int8"),
            id="npu-full",
        ),
        pytest.param(
            "small=pruned.onnx",
            ("small", "pruned.onnx", "cpu", ("CPUExecutionProvider",), None),
            id="cpu-defaults",
        ),
        pytest.param(
            "fp16-trt=m.onnx:gpu:TensorrtExecutionProvider+CUDAExecutionProvider",
            (
                "fp16-trt",
                "m.onnx",
                "gpu",
                ("TensorrtExecutionProvider", "CUDAExecutionProvider"),
                None,
            ),
            id="gpu-two-providers",
        ),
    ],
)
def test_extra_variant_specs_are_parsed(spec: str, expected: tuple[object, ...]) -> None:
    e = request.parse_extra(spec)
    assert (e.name, str(e.path), e.accelerator_class, e.providers, e.precision) == expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        pytest.param("model.onnx", "NAME=PATH", id="no-name"),
        pytest.param("int4=m.onnx", "other than fp32/fp16/int8/int4", id="built-in-name"),
        pytest.param("Big=m.onnx", "lower-case", id="upper-case"),
        pytest.param("x=m.onnx:tpu", "not npu, gpu or cpu", id="bad-class"),
        pytest.param("x=m.onnx:cpu:CPUExecutionProvider:int2", "precision", id="bad-precision"),
        pytest.param("x=m.onnx:npu", "needs its execution providers", id="npu-without-ep"),
    ],
)
def test_bad_extra_variant_specs_say_what_to_write(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        request.parse_extra(spec)


def _model(nodes: list[onnx.NodeProto], weights: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(weights, "w")],
    )
    return helper.make_model(graph)


@pytest.mark.parametrize(
    ("nodes", "dtype", "precision"),
    [
        pytest.param([helper.make_node("Add", ["x", "w"], ["y"])], np.float32, "fp32", id="fp32"),
        pytest.param([helper.make_node("Add", ["x", "w"], ["y"])], np.float16, "fp16", id="fp16"),
        pytest.param(
            [helper.make_node("DequantizeLinear", ["w", "s"], ["y"])], np.int8, "int8", id="qdq"
        ),
    ],
)
def test_the_precision_of_a_supplied_model_is_read_from_it(nodes, dtype, precision) -> None:
    model = _model(nodes, np.ones((1, 4), dtype=dtype))
    assert building.infer_precision(model) == precision


INPUTS = [TensorInfo(name="x", dtype="float32", shape=["batch", 4])]


def test_calibration_npz_is_split_along_the_first_axis(tmp_path: Path) -> None:
    path = tmp_path / "calib.npz"
    np.savez(path, x=np.arange(12, dtype=np.float64).reshape(3, 4))
    feeds = calibration.load(path, INPUTS)
    assert len(feeds) == 3
    assert feeds[1]["x"].shape == (1, 4)
    assert feeds[1]["x"].dtype == np.float32


def test_a_calibration_directory_holds_one_feed_per_file(tmp_path: Path) -> None:
    for i in range(2):
        np.save(tmp_path / f"{i}.npy", np.full((1, 4), i, dtype=np.float32))
    feeds = calibration.load(tmp_path, INPUTS)
    assert [float(f["x"][0, 0]) for f in feeds] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        pytest.param({"y": np.zeros((2, 4))}, "no array for input", id="wrong-name"),
        pytest.param({"x": np.zeros((2, 1, 1, 4))}, "dimensions", id="wrong-rank"),
    ],
)
def test_calibration_that_does_not_fit_the_model_is_refused(
    tmp_path: Path, arrays: dict[str, np.ndarray], problem: str
) -> None:
    path = tmp_path / "calib.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=problem):
        calibration.load(path, INPUTS)


@pytest.mark.parametrize(
    ("shape", "int4"),
    [
        pytest.param(transformer.Shape(2, 128, 512), True, id="llm-style"),
        pytest.param(transformer.Shape(1, 32, 64), False, id="too-small-to-gain"),
    ],
)
def test_int4_is_offered_unasked_only_to_llm_style_models(
    shape: transformer.Shape, int4: bool
) -> None:
    req = request.PublishRequest(Path("m.onnx"), "m", "1", Path("s"), Path("k"))
    names = building.variant_names(req, "fp32", transformer.build(shape))
    assert names == ["fp32", "fp16", "int8", *(["int4"] if int4 else [])]
    asked = request.PublishRequest(Path("m.onnx"), "m", "1", Path("s"), Path("k"),
                                   variants=("fp32", "int4"))  # fmt: skip
    assert building.variant_names(asked, "fp32", transformer.build(shape)) == ["fp32", "int4"]


def test_a_4_bit_matmul_is_labelled_int4_and_an_8_bit_one_int8() -> None:
    def model(bits: int) -> onnx.ModelProto:
        node = helper.make_node("MatMulNBits", ["x", "w", "s"], ["y"], domain="com.microsoft",
                                K=32, N=32, bits=bits, block_size=32)  # fmt: skip
        graph = helper.make_graph([node], "g", [], [])
        return helper.make_model(graph)

    assert building.infer_precision(model(4)) == "int4"
    assert building.infer_precision(model(8)) == "int8"
