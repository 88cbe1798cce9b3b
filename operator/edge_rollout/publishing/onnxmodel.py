"""ONNX facts for the publisher: load and check a model, find its tensors' byte ranges.

The only place that parses ONNX protobuf for the store: it hands `content.chunking` plain byte
ranges. Must not chunk, compress or write the store.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

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
    for _, tensor in stored_tensors(model):
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
    if tensor.data_type in _FOUR_BIT:
        return (count + 1) // 2  # two to a byte
    return count * itemsize


_FOUR_BIT = {onnx.TensorProto.INT4, onnx.TensorProto.UINT4, onnx.TensorProto.FLOAT4E2M1}


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


Stored = tuple[str, onnx.TensorProto]
"""(name, tensor) of a tensor stored in the model: initializer, attribute value, sparse part."""


def _unique(name: str, seen: set[str]) -> str:
    out, n = name, 1
    while out in seen:
        n += 1
        out = f"{name}#{n}"
    seen.add(out)
    return out


def _attribute_tensors(node: onnx.NodeProto, attr: onnx.AttributeProto) -> Iterator[Stored]:
    """Tensors held by one attribute, in serialization order (`t`, `tensors`, sparse ones)."""
    own = node.output[0] if node.output else node.name
    name = own if node.op_type == "Constant" else f"{own}.{attr.name}"
    if attr.HasField("t"):
        yield name, attr.t
    for i, t in enumerate(attr.tensors):
        yield f"{name}[{i}]", t
    sparse = [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []
    for i, sp in enumerate([*sparse, *attr.sparse_tensors]):
        label = name if attr.HasField("sparse_tensor") and i == 0 else f"{name}[{i}]"
        yield f"{label}.values", sp.values
        yield f"{label}.indices", sp.indices


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[Stored]:
    """Every tensor of a graph in the order protobuf writes them: node attributes (field 1,
    subgraphs inside them at any depth), then initializers (5), then sparse initializers (15)."""
    for node in graph.node:
        for attr in node.attribute:
            yield from _attribute_tensors(node, attr)
            for sub in [attr.g] if attr.HasField("g") else []:
                yield from _graph_tensors(sub)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)
    for t in graph.initializer:
        yield t.name, t
    for sp in graph.sparse_initializer:
        yield f"{sp.values.name}.values", sp.values
        yield f"{sp.values.name}.indices", sp.indices


def stored_tensors(model: onnx.ModelProto) -> Iterator[Stored]:
    """Every tensor stored in the model, in file order: the graph's (with `Constant` values and
    subgraphs at any depth), then the model-local functions' attribute values."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            for attr in node.attribute:
                yield from _attribute_tensors(node, attr)


def _packed(message: onnx.AttributeProto | onnx.TensorProto) -> bytes:
    """The payload of the one packed repeated field set in `message`, as protobuf writes it
    (the message minus its 1-byte tag and varint length)."""
    raw = bytes(message.SerializeToString())
    i = 1
    while raw[i] & 0x80:
        i += 1
    return raw[i + 1 :]


def _varints(t: onnx.TensorProto) -> bytes:
    for field in ("int32_data", "int64_data", "uint64_data"):
        values = getattr(t, field)
        if values:
            only = onnx.TensorProto()
            getattr(only, field).extend(values)
            return _packed(only)
    return b""


def payload(t: onnx.TensorProto) -> tuple[str, bytes]:
    """(dtype of its items, the bytes as stored in the file) of a tensor's values: `raw_data`,
    or packed `float_data`/`double_data` (little-endian, as raw), or packed varints (`uint8`:
    opaque bytes); empty for external data and strings."""
    dtype = dtype_name(t.data_type)
    if t.data_location == onnx.TensorProto.EXTERNAL:
        return dtype, b""
    if t.raw_data:
        return dtype, bytes(t.raw_data)
    if t.float_data:
        return "float32", np.asarray(t.float_data, dtype="<f4").tobytes()
    if t.double_data:
        return "float64", np.asarray(t.double_data, dtype="<f8").tobytes()
    return "uint8", _varints(t)


Payload = tuple[str, str, bytes]
"""(name, dtype of its items, bytes as stored in the file) of one stored tensor or value list."""


def _value_lists(model: onnx.ModelProto) -> Iterator[Payload]:
    """`floats`/`ints` attributes (`Constant` value_floats/value_ints): proto2 writes them
    unpacked, a tag before every value, so they are found as their serialized field (`uint8`)."""
    nodes = [n for g in graphs(model.graph) for n in g.node]
    nodes += [n for f in model.functions for n in f.node]
    for node in nodes:
        for attr in node.attribute:
            for field in ("floats", "ints"):
                if getattr(attr, field):
                    only = onnx.AttributeProto()
                    getattr(only, field).extend(getattr(attr, field))
                    name = node.output[0] if node.output else node.name
                    label = name if node.op_type == "Constant" else f"{name}.{attr.name}"
                    yield label, "uint8", only.SerializeToString()


def _payloads(model: onnx.ModelProto) -> Iterator[Payload]:
    for name, t in stored_tensors(model):
        yield name, *payload(t)
    yield from _value_lists(model)


def _locate(data: bytes, raw: bytes, cursor: int) -> int:
    """Where `raw` is in `data`: from `cursor` on (file order), else anywhere before it."""
    start = data.find(raw, cursor)
    return start if start >= 0 else data.find(raw, 0, cursor)


def tensor_spans(model: onnx.ModelProto, data: bytes, min_size: int = 1024) -> list[TensorSpan]:
    """Byte ranges of every tensor stored inside the file (`stored_tensors`: initializers,
    `Constant` values, subgraphs at any depth, sparse parts) of `min_size` bytes or more, found
    in serialization order; names are made unique. Spans never overlap."""
    spans: list[TensorSpan] = []
    seen: set[str] = set()
    cursor = 0
    for name, dtype, raw in _payloads(model):
        if len(raw) < min_size:
            continue
        start = _locate(data, raw, cursor)
        if start < 0:
            continue
        spans.append(TensorSpan(_unique(name, seen), dtype, start, start + len(raw)))
        cursor = max(cursor, start + len(raw))
    return _disjoint(spans)


def _disjoint(spans: list[TensorSpan]) -> list[TensorSpan]:
    """`spans` in file order without those overlapping an earlier one."""
    out: list[TensorSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if not out or span.start >= out[-1].end:
            out.append(span)
    return out


def external_files(model: onnx.ModelProto) -> list[ExternalFile]:
    """External data files and the tensor ranges in each (offset/length from the model), for
    every stored tensor (initializers and attribute values of every subgraph)."""
    by_file: dict[str, list[TensorSpan]] = {}
    seen: set[str] = set()
    for name, t in stored_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        start, length = int(info.get("offset", 0)), int(info.get("length", 0) or 0)
        spans = by_file.setdefault(info["location"], [])
        if length:
            spans.append(
                TensorSpan(_unique(name, seen), dtype_name(t.data_type), start, start + length)
            )
    return [ExternalFile(p, tuple(_disjoint(s))) for p, s in sorted(by_file.items())]


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every subgraph in it (`If` branches, `Loop` and `Scan` bodies), at any depth."""
    yield graph
    for node in graph.node:
        for sub in subgraphs(node):
            yield from graphs(sub)


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The node's own subgraphs (`If` branches, `Loop` and `Scan` bodies), not nested ones."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        yield from attr.graphs


def outer_inputs(node: onnx.NodeProto) -> list[str]:
    """Names the node's subgraphs (`If` branches, `Loop` and `Scan` bodies, at any depth) read
    from the graph around the node: inputs the node has without listing them."""
    found: dict[str, None] = {}
    for sub in subgraphs(node):
        defined = {v.name for v in sub.input} | {t.name for t in sub.initializer}
        defined |= {s.values.name for s in sub.sparse_initializer}
        for inner in sub.node:
            for name in [*inner.input, *outer_inputs(inner)]:
                if name and name not in defined:
                    found.setdefault(name)
            defined.update(inner.output)
        found.update(dict.fromkeys(v.name for v in sub.output if v.name not in defined))
    return list(found)


def sort_nodes(graph: onnx.GraphProto) -> bool:
    """Puts `graph`'s nodes in an order where each comes after the nodes whose outputs it reads,
    its subgraphs' outer inputs included (onnxruntime's quantizers sort without those, which can
    put an `If` before the node its branch reads from); otherwise keeps the order they had.
    True when the order changed."""
    nodes = list(graph.node)
    producer = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    needs = [
        {producer[n] for n in [*node.input, *outer_inputs(node)] if n in producer} - {i}
        for i, node in enumerate(nodes)
    ]
    users: list[list[int]] = [[] for _ in nodes]
    for i, deps in enumerate(needs):
        for d in deps:
            users[d].append(i)
    waiting = [len(deps) for deps in needs]
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users[i]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(nodes) or order == sorted(order):  # a cycle: not ours to fix
        return False
    graph.ClearField("node")
    graph.node.extend(nodes[i] for i in order)
    return True


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
