"""Variants of models whose `If` branches read weights from the graph around them (silero-vad's
opset-15 export does): fp16 keeps such a node in float32 with every float value it reads cast,
branch reads included; nodes are re-sorted so that a node comes after whatever its subgraphs read
(onnxruntime's quantizers sort without those reads)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.publishing import onnxmodel, variants

N = 64


def _branch(name: str, scale: float) -> onnx.GraphProto:
    """x @ w (both from outside) times this branch's own float32 constant."""
    own = numpy_helper.from_array(np.full(N, scale, np.float32), f"{name}_scale")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], [f"{name}_mm"]),
        helper.make_node("Mul", [f"{name}_mm", own.name], [f"{name}_out"]),
    ]
    out = helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [1, N])
    return helper.make_graph(nodes, name, [], [out], [own])


def _model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((N, N)).astype(np.float32) / 8, "w")
    nodes = [
        helper.make_node("If", ["cond"], ["picked"], then_branch=_branch("then", 2.0),
                         else_branch=_branch("else", -1.0)),
        helper.make_node("Relu", ["picked"], ["y"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N]),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(path: Path, cond: bool) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.linspace(-1, 1, N, dtype=np.float32).reshape(1, N)
    return np.asarray(session.run(None, {"x": x, "cond": np.array(cond)})[0])


def test_outer_inputs_are_the_names_a_branch_reads_from_outside() -> None:
    (if_node, relu) = _model().graph.node
    assert onnxmodel.outer_inputs(if_node) == ["x", "w"]
    assert onnxmodel.outer_inputs(relu) == []


@pytest.mark.parametrize("cond", [True, False])
def test_fp16_keeps_an_if_that_reads_outer_weights_in_float32_and_agrees(
    cond: bool, tmp_path: Path
) -> None:
    src = tmp_path / "m.onnx"
    onnx.save(_model(), str(src))
    out = tmp_path / "fp16.onnx"
    variants.build_fp16(src, out, progress=lambda _: None)
    built = onnx.load(str(out))
    assert built.graph.initializer[0].data_type == TensorProto.FLOAT16  # w itself is halved
    casts = [n for n in built.graph.node if n.op_type == "Cast" and n.input == ["w"]]
    assert [helper.get_attribute_value(a) for n in casts for a in n.attribute] == [
        TensorProto.FLOAT
    ]
    expected = _run(src, cond)
    got = _run(out, cond)
    assert np.abs(got - expected).max() < 5e-3 * np.abs(expected).max()


def _chain(n: int, seed: int) -> onnx.GraphProto:
    """n nodes, each reading one or two earlier values; some are `If` nodes whose branch reads
    an earlier value from outside. Listed in a random order."""
    rng = random.Random(seed)
    nodes = []
    for i in range(n):
        reads = rng.sample(["x", *(f"v{j}" for j in range(i))], k=min(i + 1, 2))
        if i and rng.random() < 0.3:
            out = helper.make_tensor_value_info(f"b{i}", TensorProto.FLOAT, [1])
            body = helper.make_graph(
                [helper.make_node("Identity", [reads[0]], [f"b{i}"])], f"body{i}", [], [out]
            )
            nodes.append(helper.make_node("If", ["c"], [f"v{i}"], then_branch=body,
                                          else_branch=body))  # fmt: skip
        else:
            nodes.append(helper.make_node("Sum", reads, [f"v{i}"]))
    rng.shuffle(nodes)
    return helper.make_graph(nodes, "g", [], [])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), seed=st.integers(0, 10_000))
def test_sorted_nodes_come_after_every_node_they_or_their_branches_read(n: int, seed: int) -> None:
    graph = _chain(n, seed)
    before = sorted(node.output[0] for node in graph.node)
    onnxmodel.sort_nodes(graph)
    assert sorted(node.output[0] for node in graph.node) == before
    made = {"x", "c"}
    for node in graph.node:
        assert set(node.input) | set(onnxmodel.outer_inputs(node)) <= made, node.output[0]
        made.update(node.output)
    assert onnxmodel.sort_nodes(graph) is False  # already in order: left as it is
