"""ONNX facts for the publisher: load and check a model, find its tensors' byte ranges.

The only place that parses ONNX protobuf for the store: it hands `content.chunking` plain byte
ranges. Must not chunk, compress or write the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge_rollout.api.manifest import OnnxFacts, TensorInfo
from edge_rollout.content.chunking import TensorSpan


class ModelError(Exception):
    """The input is not a usable ONNX model; the message says what to do."""


@dataclass(frozen=True)
class ExternalFile:
    """An external-data file a model refers to, and the tensors inside it."""

    path: str
    spans: tuple[TensorSpan, ...]


def load(path: Path) -> onnx.ModelProto:
    """The model at `path` without its external data, checked; `ModelError` if it is not ONNX."""
    if not path.is_file():
        what = "is a directory, not a model file" if path.is_dir() else "does not exist"
        raise ModelError(f"{path}: {what}; check the path to the FP32 .onnx model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError and others
        raise ModelError(f"{path}: not an ONNX file ({exc}); pass a .onnx model") from exc
    if not model.graph.node:
        raise ModelError(f"{path}: the ONNX graph has no nodes; pass a real model")
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: the ONNX checker refuses it: {exc}") from exc
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            _check_external(path, tensor)
    return model


def _check_external(path: Path, tensor: onnx.TensorProto) -> None:
    """An external tensor's bytes must match its shape and lie inside its file, so that a model
    declaring more (a lie, or a truncated file) is refused before anything is read."""
    info = {e.key: e.value for e in tensor.external_data}
    file = path.parent / info["location"]
    size = file.stat().st_size
    offset = int(info.get("offset") or 0)
    length = int(info.get("length") or 0) or size - offset
    needed = _nbytes(tensor)
    if needed is not None and length != needed:
        shape = f"{list(tensor.dims)} of {dtype_name(tensor.data_type)}"
        raise ModelError(
            f"{path}: tensor {tensor.name} declares {length} bytes of external data in "
            f"{info['location']}, but its shape {shape} needs {needed}; re-export the model"
            " with its external data"
        )
    if offset + length > size:
        raise ModelError(
            f"{path}: tensor {tensor.name} needs bytes {offset}..{offset + length} of "
            f"{info['location']}, which holds {size}; the external data file is truncated"
        )


def _nbytes(tensor: onnx.TensorProto) -> int | None:
    """Bytes the tensor's shape needs, or None for types without a fixed size (strings)."""
    try:
        itemsize = np.dtype(dtype_name(tensor.data_type)).itemsize
    except TypeError:
        return None
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count * itemsize


def dtype_name(elem_type: int) -> str:
    """numpy dtype name of an ONNX element type (`float32`), or the ONNX name if none."""
    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


def _info(value: onnx.ValueInfoProto) -> TensorInfo:
    t = value.type.tensor_type
    shape: list[int | str] = [d.dim_param or d.dim_value for d in t.shape.dim]
    return TensorInfo(name=value.name, dtype=dtype_name(t.elem_type), shape=shape)


def facts(model: onnx.ModelProto) -> OnnxFacts:
    """Opsets, producer, inputs and outputs, external data files."""
    inits = {t.name for t in model.graph.initializer}
    return OnnxFacts(
        ir_version=model.ir_version,
        opsets={o.domain: o.version for o in model.opset_import},
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        inputs=[_info(v) for v in model.graph.input if v.name not in inits],
        outputs=[_info(v) for v in model.graph.output],
        external_data=sorted({f.path for f in external_files(model)}),
    )


def _raw_values(t: onnx.TensorProto) -> bytes:
    if t.raw_data:
        return bytes(t.raw_data)
    if t.float_data or t.double_data:
        return bytes(
            numpy_helper.to_array(t)
            .astype(np.dtype(dtype_name(t.data_type)).newbyteorder("<"))
            .tobytes()
        )
    return b""


def tensor_spans(model: onnx.ModelProto, data: bytes, min_size: int = 1024) -> list[TensorSpan]:
    """Byte ranges of the initializers stored inside the file, found in serialization order."""
    spans: list[TensorSpan] = []
    cursor = 0
    for t in model.graph.initializer:
        raw = _raw_values(t)
        if len(raw) < min_size:
            continue
        start = data.find(raw, cursor)
        if start < 0:
            continue
        spans.append(TensorSpan(t.name, dtype_name(t.data_type), start, start + len(raw)))
        cursor = start + len(raw)
    return spans


def external_files(model: onnx.ModelProto) -> list[ExternalFile]:
    """External data files and the tensor ranges in each (offset/length from the model)."""
    by_file: dict[str, list[TensorSpan]] = {}
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        start, length = int(info.get("offset", 0)), int(info.get("length", 0) or 0)
        spans = by_file.setdefault(info["location"], [])
        if length:
            spans.append(TensorSpan(t.name, dtype_name(t.data_type), start, start + length))
    return [ExternalFile(p, tuple(s)) for p, s in sorted(by_file.items())]


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every subgraph in it (`If` branches, `Loop` and `Scan` bodies), at any depth."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from graphs(attr.g)
            for sub in attr.graphs:
                yield from graphs(sub)


def constant_tensors(graph: onnx.GraphProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """(output name, tensor) of every `Constant` node's tensor value, in every subgraph too."""
    for g in graphs(graph):
        for node in g.node:
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    yield node.output[0], attr.t


def all_tensors(graph: onnx.GraphProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """Every stored tensor: initializers of every (sub)graph, then `Constant` node values."""
    for g in graphs(graph):
        for t in g.initializer:
            yield t.name, t
    yield from constant_tensors(graph)


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The model's `metadata_props` as a dict (Ultralytics puts `imgsz` there)."""
    return {p.key: p.value for p in model.metadata_props}
