"""Builds the publishable variants of an FP32 model into files: fp16 (I/O types kept), int8
(dynamic, or static when the user gives calibration inputs) and int4 (weight-only).

fp16 converts every float tensor to float16, casts at the graph inputs and outputs so callers see
the original types, and keeps in float32 (with casts around) the nodes onnxruntime cannot run in
float16, found by asking onnxruntime itself. Weights are streamed tensor by tensor, never held
whole twice; large variants keep them in one external data file. Must not measure or write the
store.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.publishing.onnxmodel import (
    ModelError,
    graphs,
    outer_inputs,
    sort_nodes,
    subgraphs,
)

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
EXTERNAL_DATA_ABOVE = 1 << 30
"""Bytes of weights above which a variant keeps them in one external data file beside it
(`<file>.data`): protobuf cannot serialize a model of 2 GiB or more."""
INLINE_BELOW = 1024
"""Tensors of fewer bytes stay inside the graph (onnx's own size_threshold)."""
_CHUNK = 1 << 22
"""Elements converted at a time: memory per step stays small even for a multi-GB tensor."""
_ALIGN = 4096
"""External tensors start on page boundaries, so onnxruntime can map them."""
_NODE_IN_ERROR = (
    re.compile(r"node with name '([^']+)'"),
    re.compile(r"in node \(([^)]+)\)"),
    re.compile(r"Node \(([^)]+)\)"),
)


def data_file(out: Path) -> Path:
    """The external data file of the variant at `out`: `<out.name>.data` beside it."""
    return out.with_name(out.name + ".data")


def _float_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def _half_tensor(t: TensorProto) -> TensorProto:
    """`t` as float16. An external `t` already holds float16 bytes (build_fp16's weight pass wrote
    them): only its type changes."""
    if t.data_location == TensorProto.EXTERNAL:
        out = TensorProto()
        out.CopyFrom(t)
        out.data_type = HALF
        return out
    values = np.clip(numpy_helper.to_array(t), -65504, 65504).astype(np.float16)
    return numpy_helper.from_array(values, t.name)


def _convert_node(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
            attr.t.CopyFrom(_half_tensor(attr.t))
        if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
            attr.i = HALF


def _keep_fp32(node: onnx.NodeProto, types: dict[str, int]) -> list[onnx.NodeProto]:
    """Casts that wrap a node kept in float32: before (to float) and after (to float16). The
    float values its subgraphs read from outside (an `If` branch's weights, left float32 with the
    branch) are cast too."""
    before, after = [], []
    for i, name in enumerate(node.input):
        if name and types.get(name) == FLOAT:
            node.input[i] = f"{name}__fp32_for_{node.name}"
            before.append(helper.make_node("Cast", [name], [node.input[i]], to=FLOAT))
    for name in outer_inputs(node):
        if types.get(name) == FLOAT:
            inner = f"{name}__fp32_for_{node.name}"
            for sub in subgraphs(node):
                _rename_reads(sub, name, inner)
            before.append(helper.make_node("Cast", [name], [inner], to=FLOAT))
    for i, name in enumerate(node.output):
        if name and types.get(name) == FLOAT:
            node.output[i] = f"{name}__fp32"
            after.append(helper.make_node("Cast", [node.output[i]], [name], to=HALF))
    return [*before, node, *after]


def _rename_reads(graph: onnx.GraphProto, name: str, new: str) -> None:
    """Every read of `name` in `graph` and its subgraphs reads `new` instead."""
    for g in graphs(graph):
        for node in g.node:
            node.input[:] = [new if n == name else n for n in node.input]
        for v in g.output:
            if v.name == name:
                v.name = new


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
    """A float16 copy of `model`; nodes named in `keep` stay float32. Inputs/outputs keep types.
    Its external float tensors must already hold float16 bytes (_half_tensor)."""
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


def _external(t: TensorProto) -> bool:
    return t.data_location == TensorProto.EXTERNAL


def _nbytes(t: TensorProto) -> int:
    if _external(t):
        return int({e.key: e.value for e in t.external_data}.get("length") or 0)
    return len(t.raw_data) if t.HasField("raw_data") else t.ByteSize()


def _raw_chunks(t: TensorProto, base: Path) -> Iterator[bytes]:
    """The tensor's little-endian bytes, a few MB at a time when they are external data."""
    if not _external(t):
        yield t.raw_data if t.HasField("raw_data") else numpy_helper.to_array(t).tobytes()
        return
    info = {e.key: e.value for e in t.external_data}
    itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    left = int(info.get("length") or 0) or itemsize * _elements(t)
    with (base / info["location"]).open("rb") as f:
        f.seek(int(info.get("offset") or 0))
        while left > 0:
            chunk = f.read(min(left, 4 * _CHUNK))
            if not chunk:
                raise ModelError(f"{t.name}: its external data {info['location']} is truncated")
            left -= len(chunk)
            yield chunk


def _half_chunks(t: TensorProto, base: Path) -> Iterator[bytes]:
    for raw in _raw_chunks(t, base):
        for i in range(0, len(raw), 4 * _CHUNK):
            part = np.frombuffer(raw, np.float32, min(_CHUNK, (len(raw) - i) // 4), i)
            yield np.clip(part, -65504, 65504).astype(np.float16).tobytes()


class _DataFile:
    """One external data file being written: appends tensors and points them at it."""

    def __init__(self, f: IO[bytes], location: str) -> None:
        self.f, self.location = f, location

    def put(self, t: TensorProto, chunks: Iterator[bytes]) -> None:
        offset = -(-self.f.tell() // _ALIGN) * _ALIGN
        self.f.seek(offset)
        length = sum(self.f.write(c) for c in chunks)
        for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
            t.ClearField(field)
        t.ClearField("uint64_data")
        del t.external_data[:]
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.location), ("offset", offset), ("length", length)):
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[TensorProto]:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors


def _nested_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Tensors convert_fp16 leaves as they are: those of subgraphs, local functions and sparse
    initializers."""
    for i, g in enumerate(graphs(model.graph)):
        if i:
            yield from g.initializer
            yield from _node_tensors(g.node)
        for sparse in g.sparse_initializer:
            yield from (sparse.values, sparse.indices)
    for function in model.functions:
        yield from _node_tensors(function.node)


def _big(t: TensorProto) -> bool:
    return _external(t) or (t.data_type != TensorProto.STRING and _nbytes(t) >= INLINE_BELOW)


def _weights_out(src: Path, data: _DataFile, half: bool) -> onnx.ModelProto:
    """The model at `src` without its weights: its large and external tensors written to `data`
    (top-level float initializers as float16 when `half`: convert_fp16 then only retypes them),
    small attribute values inline. Read one initializer at a time (_read_skeleton)."""
    base = src.parent

    def move(t: TensorProto) -> None:
        if _big(t) and half and t.data_type == FLOAT:
            data.put(t, _half_chunks(t, base))
        elif _big(t):
            data.put(t, _raw_chunks(t, base))

    model = _read_skeleton(src, move)
    for t in _node_tensors(model.graph.node):
        _load_inline(t, base)
    for t in _nested_tensors(model):
        if _external(t):
            data.put(t, _raw_chunks(t, base))
    return model


def _read_skeleton(src: Path, move: Callable[[TensorProto], None]) -> onnx.ModelProto:
    """The model at `src`, each top-level initializer passed to `move` (which may point it at
    external data) as it is read: onnx.load would hold the file's bytes and their parse at once,
    twice the weights of a model without external data."""
    model_rest, graph_rest = bytearray(), bytearray()
    size = src.stat().st_size
    with src.open("rb") as f:
        while f.tell() < size:
            number, head, length = _field(f)
            if number != _GRAPH:
                model_rest += head + _read(f, length)
                continue
            end = f.tell() + length
            while f.tell() < end:
                number, head, length = _field(f)
                body = _read(f, length)
                if number == _INITIALIZER:
                    t = TensorProto()
                    t.ParseFromString(body)
                    move(t)
                    body = t.SerializeToString()
                    head = _tag(_INITIALIZER) + _varint(len(body))
                graph_rest += head + body
    model = onnx.ModelProto()
    model.ParseFromString(bytes(model_rest + _tag(_GRAPH) + _varint(len(graph_rest)) + graph_rest))
    return model


def _field(f: IO[bytes]) -> tuple[int, bytes, int]:
    """The next protobuf field's number, its key (and length) bytes, and the length of the
    value still to read."""
    key, head = _read_varint(f)
    wire = key & 7
    if wire == 0:
        _, value = _read_varint(f)
        return key >> 3, head + value, 0
    if wire == 2:
        length, raw = _read_varint(f)
        return key >> 3, head + raw, length
    if wire in (1, 5):
        return key >> 3, head, 8 if wire == 1 else 4
    raise ModelError(f"not an ONNX file: protobuf wire type {wire}")


def _read_varint(f: IO[bytes]) -> tuple[int, bytes]:
    raw = bytearray()
    while not raw or raw[-1] & 0x80:
        raw += _read(f, 1)
    return sum((b & 0x7F) << (7 * i) for i, b in enumerate(raw)), bytes(raw)


def _read(f: IO[bytes], length: int) -> bytes:
    data = f.read(length)
    if len(data) != length:
        raise ModelError(f"{f.name}: the ONNX file is truncated")
    return data


def _fp16_skeleton(model_path: Path, out: Path) -> onnx.ModelProto:
    """The model with its weights in `out`'s data file (float ones already float16): the graph
    left is small enough to convert and serialize again and again."""
    with data_file(out).open("wb") as f:
        model = _weights_out(model_path, _DataFile(f, data_file(out).name), half=True)
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{i}"
    return model


def _check_options() -> ort.SessionOptions:
    """No graph optimization or weight pre-packing: kernels are still chosen (a float16 node
    with none is refused), while a refused model's weights are never read."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.add_session_config_entry("session.disable_prepacking", "1")
    return opts


def _refused_node(path: Path) -> str | None:
    """The node onnxruntime refuses in the model at `path`, or None if it loads."""
    try:
        ort.InferenceSession(str(path), _check_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/NotImplemented types
        for pattern in _NODE_IN_ERROR:
            if m := pattern.search(str(exc)):
                return m.group(1)
        raise ModelError(f"the fp16 model does not load in onnxruntime: {exc}") from exc
    return None


def _settle(out: Path) -> None:
    """Brings the weights of the variant at `out` inside it when they are at most
    EXTERNAL_DATA_ABOVE bytes; a larger variant keeps its one data file. The file is written
    as protobuf would serialize the whole model, one initializer in memory at a time."""
    data = data_file(out)
    if not data.exists() or data.stat().st_size > EXTERNAL_DATA_ABOVE:
        return
    model = onnx.load(str(out), load_external_data=False)
    for t in _node_tensors(model.graph.node):
        _load_inline(t, out.parent)
    for t in _nested_tensors(model):
        _load_inline(t, out.parent)
    inits = onnx.GraphProto()
    inits.initializer.extend(model.graph.initializer)
    model.graph.ClearField("initializer")
    partial = out.with_name(out.name + ".partial")
    with partial.open("wb") as f:
        _write_inline(f, model, inits, out.parent)
    partial.replace(out)
    data.unlink()


def _sort_graph(out: Path) -> None:
    """Puts the nodes of the quantized model at `out` back in an order its subgraphs' reads
    allow (onnxmodel.sort_nodes); its weights stay where they are."""
    model = onnx.load(str(out), load_external_data=False)
    if sort_nodes(model.graph):
        onnx.save_model(model, str(out))


def _load_inline(t: TensorProto, base: Path) -> None:
    if _external(t):
        onnx.external_data_helper.load_external_data_for_tensor(t, str(base))
        del t.external_data[:]
        t.ClearField("data_location")


_GRAPH, _INITIALIZER = 7, 5
"""Field numbers of ModelProto.graph and GraphProto.initializer."""


def _write_inline(f: IO[bytes], model: onnx.ModelProto, inits: onnx.GraphProto, base: Path) -> None:
    """`model` with `inits` as its graph's initializers, in protobuf's own field order."""
    model_low, model_high = _split(model, _GRAPH)
    graph_low, graph_high = _split(model.graph, _INITIALIZER)
    sizes = [_inline_size(t) for t in inits.initializer]
    entries = sum(1 + len(_varint(n)) + n for n in sizes)
    f.write(model_low + _tag(_GRAPH) + _varint(len(graph_low) + entries + len(graph_high)))
    f.write(graph_low)
    for t, size in zip(inits.initializer, sizes, strict=True):
        one = TensorProto()
        one.CopyFrom(t)
        _load_inline(one, base)
        encoded = one.SerializeToString()
        if len(encoded) != size:
            raise ModelError(f"{t.name}: its external data is not the {size} bytes it declares")
        f.write(_tag(_INITIALIZER) + _varint(size) + encoded)
    f.write(graph_high + model_high)


def _split(message: Any, number: int) -> tuple[bytes, bytes]:
    """`message` serialized: its fields numbered below `number`, and those above."""
    low, high = type(message)(), type(message)()
    low.CopyFrom(message)
    high.CopyFrom(message)
    for field in message.DESCRIPTOR.fields:
        if field.number >= number:
            low.ClearField(field.name)
        if field.number <= number:
            high.ClearField(field.name)
    return bytes(low.SerializeToString()), bytes(high.SerializeToString())


def _inline_size(t: TensorProto) -> int:
    """Bytes of `t` serialized with its external data inside (raw_data, field 9)."""
    if not _external(t):
        return int(t.ByteSize())
    one = TensorProto()
    one.CopyFrom(t)
    length = _nbytes(one)
    del one.external_data[:]
    one.ClearField("data_location")
    return int(one.ByteSize()) + 1 + len(_varint(length)) + length


def _tag(number: int) -> bytes:
    return _varint(number << 3 | 2)  # wire type 2: length-delimited


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, low = n >> 7, n & 0x7F
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def build_fp16(model_path: Path, out: Path, progress: Callable[[str], None] = print) -> None:
    """The fp16 variant at `out`, with float32 islands only where onnxruntime's CPU kernels need
    them. Weights are converted once, tensor by tensor; only the graph is converted per try."""
    skeleton = _fp16_skeleton(model_path, out)
    keep: set[str] = set()
    for _ in range(len(skeleton.graph.node) + 1):
        out.write_bytes(convert_fp16(skeleton, frozenset(keep)).SerializeToString())
        refused = _refused_node(out)
        if refused is None:
            if keep:
                progress(f"fp16: kept {len(keep)} node(s) in float32 for onnxruntime CPU")
            _settle(out)
            return
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


def _move_constants(model: onnx.ModelProto) -> None:
    keep: list[onnx.NodeProto] = []
    for node in model.graph.node:
        if not _float_constant(node):
            keep.append(node)
            continue
        tensor = onnx.TensorProto()
        tensor.CopyFrom(next(a.t for a in node.attribute if a.name == "value"))
        tensor.name = node.output[0]
        model.graph.initializer.append(tensor)
    model.graph.ClearField("node")
    model.graph.node.extend(keep)


def constants_as_initializers(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy whose top-level float `Constant` nodes are initializers (onnxruntime's quantizer
    only quantizes initializers: PaddleOCR and some PyTorch exports keep weights in Constant
    nodes); None when there are none."""
    if not any(_float_constant(n) for n in model.graph.node):
        return None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    _move_constants(out)
    return out


def _quantizable(model_path: Path, tmp: Path, constants: bool = True) -> Path:
    """A copy of the model in `tmp` with every weight in one data file beside it, copied a few MB
    at a time, and (when `constants`) its float Constant nodes as initializers. onnxruntime's
    quantizers then read external data only (a model without any would be held twice: its
    bytes and their parse), in a folder of their own for their side files."""
    path = tmp / "model.onnx"
    with data_file(path).open("wb") as f:
        data = _DataFile(f, data_file(path).name)
        model = _weights_out(model_path, data, half=False)
        if constants:
            _move_constants(model)
        for t in model.graph.initializer:
            if _big(t) and not _external(t):  # a Constant's value just moved
                data.put(t, _raw_chunks(t, tmp))
    onnx.save_model(model, str(path))
    return path


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with value_info from shape inference, as onnxruntime's quantizer re-infers it
    (save_and_reload_model_with_shape_infer: a deep copy and a reload, 3x the weights in memory)
    but run on the graph alone: large initializers are given by type and shape."""
    from onnxruntime.quantization.quant_utils import add_infer_metadata

    view = onnx.ModelProto(ir_version=model.ir_version)
    view.opset_import.extend(model.opset_import)
    view.functions.extend(model.functions)
    g, src = view.graph, model.graph
    for field in ("node", "input", "output", "value_info"):
        getattr(g, field).extend(getattr(src, field))
    for t in src.initializer:
        if _external(t) or _nbytes(t) >= INLINE_BELOW:
            g.initializer.add(name=t.name, data_type=t.data_type, dims=t.dims)
        else:
            g.initializer.append(t)
    inferred = onnx.shape_inference.infer_shapes(view)
    src.ClearField("value_info")
    src.value_info.extend(inferred.graph.value_info)
    add_infer_metadata(model)
    return model


@contextlib.contextmanager
def _lean_quantizer() -> Iterator[None]:
    """onnxruntime's quantizers re-infer shapes with `_inferred` while inside. A release of
    onnxruntime without that function in a module keeps its own there (more memory, same
    result) instead of failing."""
    from onnxruntime.quantization import base_quantizer, onnx_quantizer

    name = "save_and_reload_model_with_shape_infer"
    modules = [m for m in (base_quantizer, onnx_quantizer) if hasattr(m, name)]
    saved = [getattr(m, name) for m in modules]
    for m in modules:
        setattr(m, name, _inferred)
    try:
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            setattr(m, name, original)


def build_int8(model_path: Path, out: Path) -> None:
    """The int8 variant at `out`: onnxruntime dynamic quantization of the weights (QInt8)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    data_file(out).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        try:
            src = _quantizable(model_path, Path(tmp))
            with _lean_quantizer():
                quantize_dynamic(
                    str(src), str(out), weight_type=QuantType.QInt8, use_external_data_format=True
                )
        except Exception as exc:  # quantization raises many exception types
            raise ModelError(f"int8 dynamic quantization failed: {exc}") from exc
    _sort_graph(out)
    _settle(out)


def _graph_only(path: str | Path) -> onnx.ModelProto:
    return _inferred(onnx.load(str(path), load_external_data=False))


def _calibrated(src: Path, feeds: list[dict[str, Any]]) -> Path:
    """A file beside `src` (from _quantizable) of the activation ranges `feeds` give in it
    (onnxruntime's MinMax calibrator on the op types quantize_static quantizes). The calibrator
    keeps the graph alone (its onnxruntime session reads the weights from their file, which
    must be in the folder of its augmented model), and it runs before the quantizer loads the
    weights: quantize_static calibrating itself holds three copies at once."""
    from onnxruntime.quantization import CalibrationDataReader, calibrate
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.items, None)

    loader, calibrate.load_model_with_shape_infer = (
        calibrate.load_model_with_shape_infer,
        _graph_only,
    )
    try:
        calibrator = calibrate.create_calibrator(
            src,
            list({*QLinearOpsRegistry, *QDQRegistry}),
            augmented_model_path=str(src.with_name("augmented.onnx")),
            use_external_data_format=True,
        )
    finally:
        calibrate.load_model_with_shape_infer = loader
    calibrator.collect_data(Reader())
    path = src.with_name("ranges.json")
    calibrate.save_tensors_data(calibrator.compute_data(), path)
    return path


def build_int8_static(model_path: Path, feeds: list[dict[str, Any]], out: Path) -> None:
    """The int8 variant at `out` by static quantization (QDQ, int8 weights and activations), with
    ranges calibrated on the user's `feeds`."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    data_file(out).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        try:
            src = _quantizable(model_path, Path(tmp))
            quantize_static(
                str(src),
                str(out),
                None,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                use_external_data_format=True,
                calibration_cache_path=_calibrated(src, feeds),
            )
        except Exception as exc:  # quantization raises many exception types
            raise ModelError(f"int8 static quantization failed: {exc}") from exc
    _sort_graph(out)
    _settle(out)


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


def build_int4(model_path: Path, out: Path) -> None:
    """The int4 variant at `out`: onnxruntime's weight-only quantizer (MatMulNBits,
    GatherBlockQuantized; symmetric, blocks of INT4_BLOCK); activations and every other op stay
    float32. It raises the model to opset 21 and IR 10 (4-bit types need them): the golden
    vectors check the result."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src = _quantizable(model_path, Path(tmp), constants=False)
        model = onnx.load(str(src), load_external_data=False)
        if not any(n.op_type == "MatMul" for g in graphs(model.graph) for n in g.node) or (
            int4_weight_share(model) == 0.0
        ):
            raise ModelError(
                "int4 quantizes the weights of MatMul nodes (2-D, at least"
                f" {INT4_BLOCK} rows and columns) and this model has none: leave int4 out of"
                " --variants"
            )
        onnx.load_external_data_for_model(model, tmp)
        _quantize_int4(model, out)
        del model  # the float32 weights, before _settle reads the int4 ones
    _sort_graph(out)
    _settle(out)


def _quantize_int4(model: onnx.ModelProto, out: Path) -> None:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    data_file(out).unlink(missing_ok=True)
    try:
        quantizer = MatMulNBitsQuantizer(
            model,
            bits=4,
            block_size=INT4_BLOCK,
            is_symmetric=True,
            op_types_to_quantize=tuple(INT4_OPS),
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(out), use_external_data_format=True)
    except Exception as exc:  # the quantizer raises many exception types
        raise ModelError(f"int4 weight-only quantization failed: {exc}") from exc
