"""Every weight of a model found in its bytes, wherever the exporter put it: initializers,
`Constant` values (tensor, float_data, varints, sparse, value_floats), `If`/`Loop` subgraphs at any
depth, model-local functions, external data; checked on built models and on real corpus models."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.publishing import onnxmodel
from edge_rollout.testing import models

RNG = np.random.default_rng(3)


def _weights(n: int, dtype: type = np.float32) -> np.ndarray:
    return RNG.standard_normal(n).astype(dtype)


def _const(out: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [out], value=numpy_helper.from_array(array, out))


def _branch(name: str, array: np.ndarray, nested: onnx.GraphProto | None = None) -> (
    onnx.GraphProto
):  # fmt: skip
    """A graph adding a Constant and an initializer; with `nested`, an If inside it too."""
    add = helper.make_node("Add", [f"{name}_c", f"{name}_i"], [f"{name}_o"])
    nodes = [_const(f"{name}_c", array), add]
    init = [numpy_helper.from_array(array[::-1].copy(), f"{name}_i")]
    if nested is not None:
        nodes.append(helper.make_node("If", ["cond"], [f"{name}_n"], then_branch=nested,
                                      else_branch=nested))  # fmt: skip
    out = helper.make_tensor_value_info(f"{name}_o", TensorProto.FLOAT, [array.size])
    return helper.make_graph(nodes, name, [], [out], init)


def _model() -> tuple[onnx.ModelProto, dict[str, bytes]]:
    """A model with weights in every place, and the raw values expected for each."""
    w = {k: _weights(600) for k in ("init", "const", "then", "else", "deep", "body")}
    floats = helper.make_tensor("fd", TensorProto.FLOAT, [600], w["const"].tolist())
    ints = helper.make_tensor("ints", TensorProto.INT64, [400], list(range(0, 400_000_000, 10**6)))
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(_weights(300), "sv"),
        numpy_helper.from_array(np.arange(0, 600, 2, dtype=np.int64), "si"),
        [600],
    )
    deep = _branch("deep", w["deep"])
    nodes = [
        _const("c_raw", w["const"]),
        helper.make_node("Constant", [], ["c_fd"], value=floats),
        helper.make_node("Constant", [], ["c_int"], value=ints),
        helper.make_node("Constant", [], ["c_sparse"], sparse_value=sparse),
        helper.make_node("Constant", [], ["c_list"], value_floats=_weights(300).tolist()),
        helper.make_node(
            "If",
            ["cond"],
            ["y"],
            then_branch=_branch("then", w["then"], deep),
            else_branch=_branch("else", w["else"]),
        ),
        helper.make_node("Add", ["y", "init"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [600])],
        [numpy_helper.from_array(w["init"], "init")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    expected = {
        "init": w["init"].tobytes(),
        "c_raw": w["const"].tobytes(),
        "c_fd": np.asarray(w["const"], "<f4").tobytes(),
        "then_c": w["then"].tobytes(),
        "then_i": w["then"][::-1].tobytes(),
        "else_c": w["else"].tobytes(),
        "deep_c": w["deep"].tobytes(),
        "deep_i": w["deep"][::-1].tobytes(),
        "c_sparse.values": sparse.values.raw_data,
        "c_sparse.indices": sparse.indices.raw_data,
    }
    return model, expected


def test_every_stored_weight_is_found_with_its_exact_bytes() -> None:
    model, expected = _model()
    data = model.SerializeToString()
    spans = onnxmodel.tensor_spans(model, data)
    found = {s.name: data[s.start : s.end] for s in spans}
    for name, raw in expected.items():
        hits = [n for n, b in found.items() if n.split("#")[0] == name and b == raw]
        assert hits, f"{name} not found among {sorted(found)}"
    assert found["c_int"] == onnxmodel.payload(model.graph.node[2].attribute[0].t)[1]
    assert "c_list" in found
    assert len(found) == len(spans)  # unique names
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_the_varint_payload_is_what_protobuf_writes() -> None:
    t = helper.make_tensor("i", TensorProto.INT64, [3000], list(range(-1500, 1500)))
    _, raw = onnxmodel.payload(t)
    assert raw
    assert raw in t.SerializeToString()
    assert onnxmodel.payload(numpy_helper.from_array(np.ones(4, np.float32)))[0] == "float32"


def test_weights_in_external_data_are_listed_from_every_subgraph(tmp_path: Path) -> None:
    model, _ = _model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="m.weights",
              size_threshold=1024)  # fmt: skip
    loaded = onnxmodel.load(path)
    (ext,) = onnxmodel.external_files(loaded)
    weights = (tmp_path / "m.weights").read_bytes()
    names = {s.name for s in ext.spans}
    moved = {n for n, t in onnxmodel.stored_tensors(loaded) if t.data_location == 1}
    assert {"init", "then_i", "deep_i", "else_i"} <= moved  # onnx moves initializers only
    assert {n.split("#")[0] for n in names} == moved
    assert len(names) == 5  # deep_i twice: the nested If's two branches
    for span in ext.spans:
        assert span.end <= len(weights)
    assert all(a.end <= b.start for a, b in itertools.pairwise(ext.spans))


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(256, 2000), min_size=1, max_size=6),
    places=st.lists(st.sampled_from(["init", "const", "sub"]), min_size=6, max_size=6),
    seed=st.integers(0, 2**16),
    duplicate=st.booleans(),
)
def test_any_mix_of_places_every_big_tensor_is_found(
    sizes: list[int], places: list[str], seed: int, duplicate: bool
) -> None:
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    if duplicate:
        arrays.append(arrays[0].copy())  # equal contents in two places: both found, apart
    nodes: list[onnx.NodeProto] = []
    sub_nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for i, a in enumerate(arrays):
        place = places[i % len(places)]
        if place == "init":
            inits.append(numpy_helper.from_array(a, f"t{i}"))
        else:
            (nodes if place == "const" else sub_nodes).append(_const(f"t{i}", a))
    out = helper.make_tensor_value_info("o", TensorProto.FLOAT, [1])
    body = helper.make_graph(
        [*sub_nodes, helper.make_node("Identity", ["x"], ["o"])], "b", [], [out]
    )
    nodes.append(helper.make_node("If", ["cond"], ["y"], then_branch=body, else_branch=body))
    graph = helper.make_graph(nodes, "g", [], [], inits)
    model = helper.make_model(graph)
    data = model.SerializeToString()
    spans = onnxmodel.tensor_spans(model, data)
    big = [(a.tobytes(), places[i % len(places)]) for i, a in enumerate(arrays) if a.nbytes >= 1024]
    got = {data[s.start : s.end] for s in spans}
    assert len(spans) == sum(2 if place == "sub" else 1 for _, place in big)  # then and else
    assert got == {raw for raw, _ in big}
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


@pytest.mark.parametrize("name", ["silero-vad", "ppocr-det", "ppocr-cls"])
def test_real_models_with_constant_and_subgraph_weights_are_covered(
    name: str, tmp_path: Path
) -> None:
    model = next(m for m in models.CORPUS if m.name == name)
    path = models.corpus_model_path(model, tmp_path)
    if isinstance(path, str):
        pytest.skip(path)
    loaded = onnx.load(str(path), load_external_data=False)
    data = path.read_bytes()
    spans = onnxmodel.tensor_spans(loaded, data)
    in_initializers = sum(len(onnxmodel.payload(t)[1]) for t in loaded.graph.initializer)
    assert in_initializers < 0.1 * len(data)  # what reading graph.initializer alone found
    stored = [onnxmodel.payload(t)[1] for _, t in onnxmodel.stored_tensors(loaded)]
    big = {hashlib.sha256(raw).hexdigest() for raw in stored if len(raw) >= 1024}
    found = {hashlib.sha256(data[s.start : s.end]).hexdigest() for s in spans}
    assert found == big
    covered = sum(s.end - s.start for s in spans) / len(data)
    assert covered > 0.8, f"{name}: spans cover {covered:.1%} of the file"
