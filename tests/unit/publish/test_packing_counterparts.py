"""A re-export that renames `Constant` outputs: unchanged weights are reused by content, a changed
one is delta-coded against its renamed counterpart, and an agent's assembly rebuilds the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.api.manifest import Manifest
from edge_rollout.content import diffing
from edge_rollout.publishing import onnxmodel, packing
from edge_rollout.store import assembly
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore

RNG = np.random.default_rng(11)
WEIGHTS = [RNG.standard_normal(20_000).astype(np.float32) for _ in range(3)]


def _model(names: list[str], weights: list[np.ndarray]) -> bytes:
    nodes = [
        helper.make_node("Constant", [], [n], value=numpy_helper.from_array(w, n))
        for n, w in zip(names, weights, strict=True)
    ]
    nodes.append(helper.make_node("Sum", names, ["y"]))
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [20_000])
    graph = helper.make_graph(nodes, "g", [], [out])
    return bytes(helper.make_model(graph).SerializeToString())


def _pack(store: DirectoryStore, data: bytes, base: packing.Base | None, version: str) -> Manifest:
    spans = onnxmodel.tensor_spans(onnx.load_from_string(data), data)
    entry = packing.pack_file(store, "model.onnx", data, spans, base)
    return Manifest(model="m", version=version, variant="v", files=[entry])


def test_renamed_constants_reuse_and_delta_against_their_counterparts(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, level=3)
    a = _model(["onnx::Constant_1", "onnx::Constant_2", "onnx::Constant_3"], WEIGHTS)
    tuned = [WEIGHTS[0], WEIGHTS[1] * np.float32(1.001), WEIGHTS[2]]
    b = _model(["onnx::Constant_7", "onnx::Constant_8", "onnx::Constant_9"], tuned)
    ma = _pack(store, a, None, "1")
    chunks = frozenset(c.digest for c in ma.files[0].chunks)
    mb = _pack(store, b, packing.base_of("1", ma.files[0], a, chunks), "2")
    old = {t.name: t.digest for t in ma.files[0].tensors}
    new = {t.name: t for t in mb.files[0].tensors}
    assert len(new) == 3
    assert new["onnx::Constant_7"].digest == old["onnx::Constant_1"]  # found by content
    assert not new["onnx::Constant_7"].deltas
    (d,) = new["onnx::Constant_8"].deltas
    assert d.base == old["onnx::Constant_2"]
    plan = diffing.diff_manifests(ma, mb)
    assert [u.delta for u in plan.deltas] == [d]
    assert plan.fetch_bytes < len(b) // 4
    files, _ = assembly.assemble(StoreReader(FileTransport(store.root), None), mb, ma,
                                 {"model.onnx": a})  # fmt: skip
    assert files["model.onnx"] == b
