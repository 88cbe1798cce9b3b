"""Builds the publishable variants of an FP32 model: fp16 (I/O types kept) and int8 (dynamic, or
static when the user gives calibration inputs).

fp16 converts every float tensor to float16, casts at the graph inputs and outputs so callers see
the original types, and keeps in float32 (with casts around) the nodes onnxruntime cannot run in
float16, found by asking onnxruntime itself. Must not measure or write the store.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.publishing.onnxmodel import ModelError, graphs

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
_NODE_IN_ERROR = (
    re.compile(r"node with name '([^']+)'"),
    re.compile(r"in node \(([^)]+)\)"),
    re.compile(r"Node \(([^)]+)\)"),
)


def _float_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def _half_tensor(t: TensorProto) -> TensorProto:
    values = np.clip(numpy_helper.to_array(t), -65504, 65504).astype(np.float16)
    return numpy_helper.from_array(values, t.name)


def _convert_node(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
            attr.t.CopyFrom(_half_tensor(attr.t))
        if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
            attr.i = HALF


def _keep_fp32(node: onnx.NodeProto, types: dict[str, int]) -> list[onnx.NodeProto]:
    """Casts that wrap a node kept in float32: before (to float) and after (to float16)."""
    before, after = [], []
    for i, name in enumerate(node.input):
        if name and types.get(name) == FLOAT:
            node.input[i] = f"{name}__fp32_for_{node.name}"
            before.append(helper.make_node("Cast", [name], [node.input[i]], to=FLOAT))
    for i, name in enumerate(node.output):
        if name and types.get(name) == FLOAT:
            node.output[i] = f"{name}__fp32"
            after.append(helper.make_node("Cast", [node.output[i]], [name], to=HALF))
    return [*before, node, *after]


def _retype(values: list[onnx.ValueInfoProto]) -> None:
    for v in values:
        if v.type.tensor_type.elem_type == FLOAT:
            v.type.tensor_type.elem_type = HALF


def _io_casts(g: onnx.GraphProto) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """Casts that keep the graph's float inputs and outputs float32 for callers."""
    inits = {t.name for t in g.initializer}
    head: list[onnx.NodeProto] = []
    tail: list[onnx.NodeProto] = []
    for v in g.input:
        if v.name not in inits and v.type.tensor_type.elem_type == FLOAT:
            inner = f"{v.name}__fp16"
            for node in g.node:
                node.input[:] = [inner if n == v.name else n for n in node.input]
            head.append(helper.make_node("Cast", [v.name], [inner], to=HALF))
    for v in g.output:
        if v.type.tensor_type.elem_type == FLOAT:
            inner = f"{v.name}__fp16"
            for node in g.node:
                node.output[:] = [inner if n == v.name else n for n in node.output]
            tail.append(helper.make_node("Cast", [inner], [v.name], to=FLOAT))
    return head, tail


def convert_fp16(model: onnx.ModelProto, keep: frozenset[str]) -> onnx.ModelProto:
    """A float16 copy of `model`; nodes named in `keep` stay float32. Inputs/outputs keep types."""
    types = _float_types(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    nodes: list[onnx.NodeProto] = []
    for node in g.node:
        if node.name in keep:
            nodes += _keep_fp32(node, types)
        else:
            _convert_node(node)
            nodes.append(node)
    g.ClearField("node")
    g.node.extend(nodes)
    head, tail = _io_casts(g)
    nodes = [*head, *g.node, *tail]
    g.ClearField("node")
    g.node.extend(nodes)
    inits = [_half_tensor(t) if t.data_type == FLOAT else t for t in g.initializer]
    g.ClearField("initializer")
    g.initializer.extend(inits)
    _retype(list(g.value_info))
    return out


def _name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for i, node in enumerate(out.graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
    return out


def _refused_node(model_bytes: bytes) -> str | None:
    """The node onnxruntime refuses in a model, or None if it loads."""
    try:
        ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/NotImplemented types
        for pattern in _NODE_IN_ERROR:
            if m := pattern.search(str(exc)):
                return m.group(1)
        raise ModelError(f"the fp16 model does not load in onnxruntime: {exc}") from exc
    return None


def build_fp16(model: onnx.ModelProto, progress: Callable[[str], None] = print) -> bytes:
    """The fp16 variant, with float32 islands only where onnxruntime's CPU kernels need them."""
    named = _name_nodes(model)
    keep: set[str] = set()
    for _ in range(len(named.graph.node) + 1):
        data = bytes(convert_fp16(named, frozenset(keep)).SerializeToString())
        refused = _refused_node(data)
        if refused is None:
            if keep:
                progress(f"fp16: kept {len(keep)} node(s) in float32 for onnxruntime CPU")
            return data
        if refused in keep:
            raise ModelError(f"fp16 conversion: onnxruntime still refuses node {refused!r}")
        keep.add(refused)
    raise ModelError("fp16 conversion did not converge")


def _float_constant(node: onnx.NodeProto) -> bool:
    return (
        node.op_type == "Constant"
        and node.domain in ("", "ai.onnx")
        and any(a.name == "value" and a.t.data_type == FLOAT for a in node.attribute)
    )


def constants_as_initializers(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy whose top-level float `Constant` nodes are initializers (onnxruntime's quantizer
    only quantizes initializers: PaddleOCR and some PyTorch exports keep weights in Constant
    nodes); None when there are none."""
    if not any(_float_constant(n) for n in model.graph.node):
        return None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep: list[onnx.NodeProto] = []
    for node in out.graph.node:
        if not _float_constant(node):
            keep.append(node)
            continue
        tensor = onnx.TensorProto()
        tensor.CopyFrom(next(a.t for a in node.attribute if a.name == "value"))
        tensor.name = node.output[0]
        out.graph.initializer.append(tensor)
    out.graph.ClearField("node")
    out.graph.node.extend(keep)
    return out


def _quantizable(model_path: Path, tmp: Path) -> Path:
    """`model_path`, or a copy with its Constant weights as initializers when it has some."""
    model = onnx.load(str(model_path))
    moved = constants_as_initializers(model)
    if moved is None:
        return model_path
    path = tmp / "initializers.onnx"
    onnx.save(moved, str(path))
    return path


def build_int8(model_path: Path) -> bytes:
    """The int8 variant: onnxruntime dynamic quantization of the weights (QInt8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        try:
            src = _quantizable(model_path, Path(tmp))
            quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8)
        except Exception as exc:  # quantization raises many exception types
            raise ModelError(f"int8 dynamic quantization failed: {exc}") from exc
        return bytes(out.read_bytes())


def build_int8_static(model_path: Path, feeds: list[dict[str, Any]]) -> bytes:
    """The int8 variant by static quantization (QDQ, int8 weights and activations), with ranges
    calibrated on the user's `feeds`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        try:
            quantize_static(
                str(_quantizable(model_path, Path(tmp))),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        except Exception as exc:  # quantization raises many exception types
            raise ModelError(f"int8 static quantization failed: {exc}") from exc
        return bytes(out.read_bytes())


INT4_BLOCK = 32
"""Weights per int4 block (one scale each): onnxruntime's MatMulNBits needs K >= the block."""
INT4_OPS = {"MatMul": 1, "Gather": 0}
"""Ops whose constant weight int4 quantizes, and the input that holds it (MatMulNBits for the
linear layers, GatherBlockQuantized for embedding tables)."""


def int4_weights(model: onnx.ModelProto) -> tuple[int, int]:
    """(float weight elements int4 quantizes, all float weight elements). Quantized are 2-D
    float initializers of at least INT4_BLOCK rows and columns that are a MatMul's B input or a
    Gather's table (LLM-style linear layers and embeddings), at any graph depth."""
    weights = {t.name: t for g in graphs(model.graph) for t in g.initializer}
    total = sum(_elements(t) for t in weights.values() if t.data_type == FLOAT)
    quantized = {
        n.input[INT4_OPS[n.op_type]]
        for g in graphs(model.graph)
        for n in g.node
        if n.op_type in INT4_OPS and _int4_weight(weights.get(n.input[INT4_OPS[n.op_type]]))
    }
    return sum(_elements(weights[name]) for name in quantized), total


def int4_weight_share(model: onnx.ModelProto) -> float:
    """The share of float weight elements that int4 quantizes (int4_weights)."""
    quantized, total = int4_weights(model)
    return quantized / total if total else 0.0


def _elements(tensor: TensorProto) -> int:
    return int(np.prod(tensor.dims)) if tensor.dims else 1


def _int4_weight(tensor: TensorProto | None) -> bool:
    return (
        tensor is not None
        and tensor.data_type == FLOAT
        and len(tensor.dims) == 2
        and min(tensor.dims) >= INT4_BLOCK
    )


def build_int4(model_path: Path) -> bytes:
    """The int4 variant: onnxruntime's weight-only quantizer (MatMulNBits, GatherBlockQuantized;
    symmetric, blocks of INT4_BLOCK); activations and every other op stay float32. It raises the
    model to opset 21 and IR 10 (4-bit types need them): the golden vectors check the result."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(model_path))
    if not any(n.op_type == "MatMul" for g in graphs(model.graph) for n in g.node) or (
        int4_weight_share(model) == 0.0
    ):
        raise ModelError(
            "int4 quantizes the weights of MatMul nodes (2-D, at least"
            f" {INT4_BLOCK} rows and columns) and this model has none: leave int4 out of"
            " --variants"
        )
    try:
        quantizer = MatMulNBitsQuantizer(
            model,
            bits=4,
            block_size=INT4_BLOCK,
            is_symmetric=True,
            op_types_to_quantize=tuple(INT4_OPS),
        )
        quantizer.process()
    except Exception as exc:  # the quantizer raises many exception types
        raise ModelError(f"int4 weight-only quantization failed: {exc}") from exc
    return bytes(quantizer.model.model.SerializeToString())
