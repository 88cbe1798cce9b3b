"""Sample inputs a model accepts: value ranges read from the graph, deterministic random feeds.

An integer input used as `Gather` indices into a stored table takes values below the table's
size (token ids, token-type ids); one compared with `Equal` against a constant takes that
constant (a sample rate); one named like a mask is all ones. Floats are N(0, 1). Must not run
onnxruntime or write the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from edge_rollout.api.manifest import TensorInfo
from edge_rollout.publishing import onnxmodel

Feed = dict[str, npt.NDArray[np.generic]]
PASS_THROUGH = frozenset({"Cast", "Unsqueeze", "Squeeze", "Reshape", "Identity", "Flatten"})
DEFAULT_RANGE = (0, 256)


@dataclass(frozen=True)
class IntRange:
    """Integer values an input takes: `low <= v < high`."""

    low: int
    high: int


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    out: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for g in onnxmodel.graphs(graph):
        for node in g.node:
            for index, name in enumerate(node.input):
                out.setdefault(name, []).append((node, index))
    return out


def _aliases(name: str, consumers: Mapping[str, list[tuple[onnx.NodeProto, int]]]) -> list[str]:
    """`name` and the values that carry it unchanged (through Cast, Unsqueeze, Reshape...)."""
    found, todo = [name], [name]
    while todo and len(found) < 16:
        for node, index in consumers.get(todo.pop(), []):
            if node.op_type in PASS_THROUGH and index == 0 and node.output[0] not in found:
                found.append(node.output[0])
                todo.append(node.output[0])
    return found


def _axis(node: onnx.NodeProto) -> int:
    return next((int(a.i) for a in node.attribute if a.name == "axis"), 0)


def _range_from(
    node: onnx.NodeProto, index: int, stored: Mapping[str, onnx.TensorProto]
) -> IntRange | None:
    """The range a use of the value implies: Gather indices below the table, Equal's constant."""
    if node.op_type in ("Gather", "GatherElements") and index == 1 and node.input[0] in stored:
        dims = list(stored[node.input[0]].dims)
        axis = _axis(node)
        return IntRange(0, int(dims[axis])) if -len(dims) <= axis < len(dims) else None
    if node.op_type == "Equal":
        other = stored.get(node.input[1 - index])
        if other is not None and int(np.prod(other.dims)) == 1:
            value = int(numpy_helper.to_array(other).reshape(-1)[0])
            return IntRange(value, value + 1)
    return None


def int_ranges(model: onnx.ModelProto, inputs: Sequence[TensorInfo]) -> dict[str, IntRange]:
    """The value range of every integer input, from how the graph uses it."""
    stored = dict(onnxmodel.all_tensors(model.graph))
    consumers = _consumers(model.graph)
    ranges: dict[str, IntRange] = {}
    for info in inputs:
        if np.dtype(info.dtype).kind not in "iu":
            continue
        if "mask" in info.name.lower():
            ranges[info.name] = IntRange(1, 2)
            continue
        found = [
            r
            for alias in _aliases(info.name, consumers)
            for node, index in consumers.get(alias, [])
            if (r := _range_from(node, index, stored)) is not None
        ]
        ranges[info.name] = min(found, key=lambda r: r.high, default=IntRange(*DEFAULT_RANGE))
    return ranges


def _value(
    rng: np.random.Generator, info: TensorInfo, shape: tuple[int, ...], r: IntRange | None
) -> npt.NDArray[np.generic]:
    dtype = np.dtype(info.dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(dtype)
    low, high = (r.low, r.high) if r is not None else DEFAULT_RANGE
    return rng.integers(low, max(high, low + 1), shape).astype(dtype)


def sample_inputs(
    inputs: Sequence[TensorInfo],
    count: int,
    shapes: Mapping[str, tuple[int, ...]],
    ranges: Mapping[str, IntRange] | None = None,
    seed: int = 0,
) -> list[Feed]:
    """Deterministic sample feeds at the given concrete shapes (see `publishing.shapes`)."""
    rng = np.random.default_rng(seed)
    found = ranges or {}
    return [
        {i.name: _value(rng, i, shapes[i.name], found.get(i.name)) for i in inputs}
        for _ in range(count)
    ]
