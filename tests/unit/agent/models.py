"""Small real ONNX models and golden vectors for the agent's tests (built with `onnx`)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.api.manifest import Array, GoldenCase, GoldenVectors


def linear_model(path: Path, weights: np.ndarray, bias: np.ndarray) -> bytes:
    """y = x @ W + b with x of shape [batch, in]; writes the file and returns its bytes."""
    n_in, n_out = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
        [numpy_helper.from_array(weights.astype(np.float32), "W"),
         numpy_helper.from_array(bias.astype(np.float32), "b")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    path.write_bytes(data)
    return data


def array(values: np.ndarray) -> Array:
    values = np.ascontiguousarray(values)
    return Array(
        dtype=values.dtype.name,
        shape=list(values.shape),
        data=base64.b64encode(values.astype(values.dtype.newbyteorder("<")).tobytes()).decode(),
    )


def golden_for(weights: np.ndarray, bias: np.ndarray, cases: int = 2) -> GoldenVectors:
    rng = np.random.default_rng(7)
    out = []
    for _ in range(cases):
        x = rng.standard_normal((1, weights.shape[0])).astype(np.float32)
        y = (x @ weights.astype(np.float32) + bias.astype(np.float32)).astype(np.float32)
        out.append(GoldenCase(inputs={"x": array(x)}, outputs={"y": array(y)}))
    return GoldenVectors(cases=out)


def random_weights(n_in: int, n_out: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out)
