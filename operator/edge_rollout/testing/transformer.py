"""A synthetic transformer-like ONNX model (LLM-style weights: embeddings, attention and MLP
MatMuls, a language-model head) of any size, optionally with its weights as external data.

For the int4 variant, the publisher's memory bound and the agent's streaming install: the seeds'
workload is models like this, from hundreds of MB to several GB, that no PyPI wheel ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass(frozen=True)
class Shape:
    """Layers, hidden width and vocabulary: 12·hidden² + 2·vocab·hidden float weights."""

    layers: int = 2
    hidden: int = 64
    vocab: int = 256

    @property
    def weight_bytes(self) -> int:
        return 4 * (self.layers * 12 * self.hidden**2 + 2 * self.vocab * self.hidden)


def shape_for(target_bytes: int, hidden: int = 1024, vocab: int = 32000) -> Shape:
    """The smallest shape with `hidden` and `vocab` whose weights reach `target_bytes`."""
    per_layer = 4 * 12 * hidden**2
    fixed = 4 * 2 * vocab * hidden
    layers = max(1, -(-(target_bytes - fixed) // per_layer))
    return Shape(layers, hidden, vocab)


class _Builder:
    def __init__(self, shape: Shape, seed: int) -> None:
        self.shape = shape
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[TensorProto] = []

    def weight(self, name: str, *dims: int) -> str:
        scale = 1.0 / np.sqrt(dims[0])
        values = (self.rng.standard_normal(dims, dtype=np.float32) * scale).astype(np.float32)
        self.weights.append(numpy_helper.from_array(values, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def layer(self, i: int, x: str) -> str:
        h = self.shape.hidden
        norm = self.node("LayerNormalization", [x, self.ones(f"l{i}.ln1", h)], f"l{i}.norm1")
        q = self.node("MatMul", [norm, self.weight(f"l{i}.wq", h, h)], f"l{i}.q")
        k = self.node("MatMul", [norm, self.weight(f"l{i}.wk", h, h)], f"l{i}.k")
        v = self.node("MatMul", [norm, self.weight(f"l{i}.wv", h, h)], f"l{i}.v")
        kt = self.node("Transpose", [k], f"l{i}.kt", perm=[0, 2, 1])
        scores = self.node("MatMul", [q, kt], f"l{i}.scores")
        scaled = self.node("Div", [scores, self.scalar(f"l{i}.sqrt_h", np.sqrt(h))], f"l{i}.sc")
        attn = self.node("Softmax", [scaled], f"l{i}.attn", axis=-1)
        mixed = self.node("MatMul", [attn, v], f"l{i}.mixed")
        out = self.node("MatMul", [mixed, self.weight(f"l{i}.wo", h, h)], f"l{i}.out")
        x = self.node("Add", [x, out], f"l{i}.res1")
        norm2 = self.node("LayerNormalization", [x, self.ones(f"l{i}.ln2", h)], f"l{i}.norm2")
        up = self.node("MatMul", [norm2, self.weight(f"l{i}.up", h, 4 * h)], f"l{i}.mlp_up")
        act = self.node("Relu", [up], f"l{i}.act")
        down = self.node("MatMul", [act, self.weight(f"l{i}.down", 4 * h, h)], f"l{i}.mlp_down")
        return self.node("Add", [x, down], f"l{i}.res2")

    def ones(self, name: str, width: int) -> str:
        self.weights.append(numpy_helper.from_array(np.ones(width, np.float32), name))
        return name

    def scalar(self, name: str, value: float) -> str:
        self.weights.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name


def build(shape: Shape = Shape(), seed: int = 0) -> onnx.ModelProto:
    """input_ids int64 [batch, sequence] -> logits float32 [batch, sequence, vocab]."""
    b = _Builder(shape, seed)
    x = b.node("Gather", [b.weight("embed", shape.vocab, shape.hidden), "input_ids"], "embedded")
    for i in range(shape.layers):
        x = b.layer(i, x)
    b.node("MatMul", [x, b.weight("lm_head", shape.hidden, shape.vocab)], "logits")
    graph = helper.make_graph(
        b.nodes,
        "transformer-like",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", None])],
        b.weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def save(model: onnx.ModelProto, path: Path, external: bool = False) -> Path:
    """`path`, with every weight in `<name>.data` beside it when `external`."""
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=f"{path.stem}.data",
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(path))
    return path
