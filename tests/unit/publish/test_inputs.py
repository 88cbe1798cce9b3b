"""Inputs for any model: value ranges read from the graph, shapes probed in onnxruntime, the
precision of a model as given (weights in Constant nodes and subgraphs counted too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.api.manifest import TensorInfo
from edge_rollout.publishing import building, feeding, onnxmodel, probing, variants
from edge_rollout.publishing.onnxmodel import ModelError


def _save(tmp_path: Path, graph: onnx.GraphProto, name: str = "m.onnx") -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _facts(path: Path) -> list[TensorInfo]:
    return onnxmodel.facts(onnxmodel.load(path)).inputs


def reflect_pad_model(tmp_path: Path) -> Path:
    """y = Pad(x, 4 each side, reflect): onnxruntime needs the last axis longer than 4."""
    pads = numpy_helper.from_array(np.array([0, 4, 0, 4], dtype=np.int64), "pads")
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")
    graph = helper.make_graph(
        [node], "pad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "out"])], [pads],
    )  # fmt: skip
    return _save(tmp_path, graph)


def reshape_model(tmp_path: Path) -> Path:
    """y = Reshape(x, [3, 7]): runs only when x holds exactly 21 values."""
    shape = numpy_helper.from_array(np.array([3, 7], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "count"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 7])], [shape],
    )  # fmt: skip
    return _save(tmp_path, graph)


def test_the_ladder_climbs_until_onnxruntime_runs_the_model(tmp_path: Path) -> None:
    path = reflect_pad_model(tmp_path)
    probe = probing.probe_shapes(path, _facts(path), {}, {})
    assert probe.dynamic
    assert probe.shapes == {"x": (1, 8)}
    assert probe.tried == ("x=1x1", "x=1x2")


def test_when_no_shape_runs_the_error_names_the_input_what_was_tried_and_the_flag(
    tmp_path: Path,
) -> None:
    path = reshape_model(tmp_path)
    with pytest.raises(ModelError) as caught:
        probing.probe_shapes(path, _facts(path), {}, {})
    message = str(caught.value)
    assert "input 'x' (shape ['batch', 'count'])" in message
    assert "x=1x1; x=1x2" in message
    assert "--input-shape x=1x1" in message


def test_an_input_shape_override_is_used_as_given(tmp_path: Path) -> None:
    path = reshape_model(tmp_path)
    assert probing.probe_shapes(path, _facts(path), {"x": (3, 7)}, {}).shapes == {"x": (3, 7)}


def embedding_model(tmp_path: Path) -> Path:
    """Token ids into a 50-row table, token types into a 2-row table, a sample rate compared
    with 16000, and an attention mask: every integer input constrained differently."""
    words = numpy_helper.from_array(np.ones((50, 4), np.float32), "words")
    types = numpy_helper.from_array(np.ones((2, 4), np.float32), "types")
    rate = helper.make_node("Constant", [], ["rate"], value=helper.make_tensor(
        "rate", TensorProto.INT64, [], [16000]))  # fmt: skip
    nodes = [
        rate,
        helper.make_node("Gather", ["words", "ids"], ["w"]),
        helper.make_node("Cast", ["token_type_ids"], ["t64"], to=TensorProto.INT64),
        helper.make_node("Gather", ["types", "t64"], ["t"]),
        helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
        helper.make_node("Add", ["w", "t"], ["y"]),
    ]
    seq: list[str | int | None] = ["batch", "seq"]
    ints: list[tuple[str, list[str | int | None]]] = [
        ("ids", seq), ("token_type_ids", seq), ("attention_mask", seq), ("sr", []), ("other", [1])
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "emb",
        [helper.make_tensor_value_info(n, TensorProto.INT64, s) for n, s in ints],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4]),
         helper.make_tensor_value_info("is16k", TensorProto.BOOL, [])],
        [words, types],
    )  # fmt: skip
    return _save(tmp_path, graph)


def test_integer_inputs_take_values_the_graph_accepts(tmp_path: Path) -> None:
    path = embedding_model(tmp_path)
    model = onnxmodel.load(path)
    ranges = feeding.int_ranges(model, onnxmodel.facts(model).inputs)
    assert ranges == {
        "ids": feeding.IntRange(0, 50),
        "token_type_ids": feeding.IntRange(0, 2),
        "attention_mask": feeding.IntRange(1, 2),
        "sr": feeding.IntRange(16000, 16001),
        "other": feeding.IntRange(*feeding.DEFAULT_RANGE),
    }
    shapes = {"ids": (1, 9), "token_type_ids": (1, 9), "attention_mask": (1, 9), "sr": (),
              "other": (1,)}  # fmt: skip
    feed = feeding.sample_inputs(onnxmodel.facts(model).inputs, 1, shapes, ranges)[0]
    assert feed["ids"].max() < 50
    assert feed["token_type_ids"].max() < 2
    assert feed["attention_mask"].min() == 1
    assert int(feed["sr"]) == 16000


def _with_subgraph_weights(dtype: type, op: str = "Identity") -> onnx.ModelProto:
    """The weights sit in a Constant node inside an If branch (as in silero-vad)."""
    value = numpy_helper.from_array(np.ones((64, 64), dtype=dtype), "w")
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=value), helper.make_node(op, ["c"], ["o"])],
        "branch", [], [helper.make_tensor_value_info("o", value.data_type, [64, 64])],
    )  # fmt: skip
    node = helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", value.data_type, [64, 64])],
    )  # fmt: skip
    return helper.make_model(graph)


@pytest.mark.parametrize(
    ("model", "precision"),
    [
        pytest.param(_with_subgraph_weights(np.float32), "fp32", id="fp32-in-subgraph"),
        pytest.param(_with_subgraph_weights(np.float16), "fp16", id="fp16-in-subgraph"),
        pytest.param(_with_subgraph_weights(np.int8, "Cast"), "int8", id="weight-only-int8"),
        pytest.param(
            _with_subgraph_weights(np.float32, "DynamicQuantizeLinear"), "int8", id="quant-op"
        ),
    ],
)
def test_the_precision_of_a_model_counts_weights_wherever_they_are(model, precision) -> None:
    assert building.infer_precision(model) == precision


def test_constant_weights_become_initializers_for_the_quantizer(tmp_path: Path) -> None:
    weight = helper.make_node(
        "Constant", [], ["w"], value=numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    )
    graph = helper.make_graph(
        [weight, helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    moved = variants.constants_as_initializers(helper.make_model(graph))
    assert moved is not None
    assert [n.op_type for n in moved.graph.node] == ["MatMul"]
    assert [t.name for t in moved.graph.initializer] == ["w"]
    assert variants.constants_as_initializers(moved) is None
    onnx.checker.check_model(moved)
