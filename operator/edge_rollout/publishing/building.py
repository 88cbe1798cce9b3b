"""Builds and measures the variants of one release, for `edge-rollout publish`.

fp32 as given, fp16, int8 (dynamic, or static with the user's calibration inputs), and extra
variants the user supplies (`--extra-variant`). Each is measured with onnxruntime on the execution
providers it declares that this machine has; when it has none of them the variant is published
unmeasured and says why. Must not write the store.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx

from edge_rollout.api.manifest import OnnxFacts
from edge_rollout.api.modeldeployment import Precision
from edge_rollout.api.release import Requirements
from edge_rollout.publishing import calibration, measuring, onnxmodel, variants
from edge_rollout.publishing.onnxmodel import ModelError
from edge_rollout.publishing.request import (
    BUILT_IN,
    GPU_PROVIDERS,
    ExtraVariant,
    Progress,
    PublishRequest,
)

REQUIREMENTS: dict[str, Requirements] = {
    "fp32": Requirements(accelerator_class="cpu"),
    "fp16": Requirements(accelerator_class="gpu", execution_providers=list(GPU_PROVIDERS)),
    "int8": Requirements(accelerator_class="cpu"),
}
"""Where each built-in variant is meant to run; the measured memory is added per variant."""
MAIN_FILE = "model.onnx"
"""Every variant's model file has this name in its manifest (external data keeps its own)."""
QUANTIZED_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
     "QLinearMatMul", "MatMulInteger", "ConvInteger"}
)  # fmt: skip


@dataclass(frozen=True)
class Built:
    """One variant's files (model first), how it was made, and what was measured."""

    name: str
    precision: Precision
    requirements: Requirements
    built_by: str
    files: dict[str, bytes]
    spans: dict[str, list[Any]]
    facts: OnnxFacts
    inputs: list[measuring.Feed]
    measured: measuring.Measured | None
    measured_with: tuple[str, ...] = measuring.CPU
    not_measured: str = ""


def infer_precision(model: onnx.ModelProto) -> Precision:
    """int8 if the graph quantizes, fp16 if most weight bytes are float16, else fp32."""
    if {n.op_type for n in model.graph.node} & QUANTIZED_OPS:
        return "int8"
    weights: Counter[int] = Counter()
    for t in model.graph.initializer:
        weights[t.data_type] += int(np.prod(t.dims)) if t.dims else 1
    if weights[onnx.TensorProto.FLOAT16] > weights[onnx.TensorProto.FLOAT]:
        return "fp16"
    return "int8" if weights[onnx.TensorProto.INT8] + weights[onnx.TensorProto.UINT8] else "fp32"


def sample_feeds(req: PublishRequest, facts: OnnxFacts) -> list[measuring.Feed]:
    """Inputs to measure agreement on: the calibration samples if given, else random ones."""
    count = max(req.samples, 2)
    if req.calibration is not None:
        found = calibration.load(req.calibration, facts.inputs)
        return (found * count)[:count] if len(found) < count else found[:count]
    return measuring.sample_inputs(facts.inputs, count)


def build_variants(
    req: PublishRequest, model: onnx.ModelProto, tmp: Path, progress: Progress
) -> list[Built]:
    """Each variant's bytes, measured in onnxruntime; fp32 first (the reference)."""
    facts = onnxmodel.facts(model)
    feeds = sample_feeds(req, facts)
    names = list(req.variants)
    order = ["fp32", *[n for n in names if n != "fp32"]]
    built: list[Built] = []
    task = "build + measure variants"
    progress.start(task, len(order) + len(req.extra_variants))
    for name in order:
        files, path, how = _variant_files(req, model, name, tmp, progress)
        measured = measuring.measure(path, feeds, runs=req.runs)
        precision = cast(Precision, name)
        built.append(_built(name, precision, REQUIREMENTS[name], how, files, path, feeds, measured))
        progress.advance(task, 1)
    for extra in req.extra_variants:
        built.append(build_extra(extra, facts, feeds, req.runs, progress))
        progress.advance(task, 1)
    return [b for b in built if b.name in names or b.name == "fp32" or b.name not in BUILT_IN]


def _built(
    name: str,
    precision: Precision,
    requirements: Requirements,
    how: str,
    files: dict[str, bytes],
    path: Path,
    feeds: list[measuring.Feed],
    measured: measuring.Measured | None,
    **extra: Any,
) -> Built:
    model = onnxmodel.load(path)
    spans = _spans(model, files)
    facts = onnxmodel.facts(model)
    return Built(name, precision, requirements, how, files, spans, facts, feeds, measured, **extra)


def _variant_files(
    req: PublishRequest, model: onnx.ModelProto, name: str, tmp: Path, progress: Progress
) -> tuple[dict[str, bytes], Path, str]:
    src = req.model
    if name == "fp32":
        return read_files(src, model), src, "as given"
    if name == "fp16":
        full = onnx.load(str(src)) if onnxmodel.external_files(model) else model
        data, how = variants.build_fp16(full, progress.note), "float16 conversion"
    elif req.calibration is not None:
        feeds = calibration.load(req.calibration, onnxmodel.facts(model).inputs)
        data = variants.build_int8_static(src, list(feeds))
        how = f"onnxruntime static int8 (QDQ, {len(feeds)} calibration samples)"
    else:
        data, how = variants.build_int8(src), "onnxruntime dynamic int8"
    path = tmp / f"{name}.onnx"
    path.write_bytes(data)
    return {MAIN_FILE: data}, path, how


def read_files(src: Path, model: onnx.ModelProto) -> dict[str, bytes]:
    """The model file and the external data files next to it, as published."""
    files = {MAIN_FILE: src.read_bytes()}
    for ext in onnxmodel.external_files(model):
        files[ext.path] = (src.parent / ext.path).read_bytes()
    return files


def build_extra(
    extra: ExtraVariant,
    reference: OnnxFacts,
    feeds: list[measuring.Feed],
    runs: int,
    progress: Progress,
) -> Built:
    """A user-supplied variant, measured on its providers when this machine has one of them."""
    model = onnxmodel.load(extra.path)
    _check_interface(extra, onnxmodel.facts(model), reference)
    files = read_files(extra.path, model)
    precision = extra.precision or infer_precision(model)
    requirements = Requirements(
        accelerator_class=extra.accelerator_class, execution_providers=list(extra.providers)
    )
    how = f"user-supplied {extra.path.name}"
    runnable = measuring.runnable_providers(list(extra.providers))
    if not runnable:
        reason = (
            f"none of its execution providers ({', '.join(extra.providers)}) is available on the"
            f" publishing machine, so it was not run: only its file size is known"
        )
        progress.note(f"{extra.name}: not measured: {reason}")
        return _built(extra.name, precision, requirements, how, files, extra.path, feeds, None,
                      measured_with=(), not_measured=reason)  # fmt: skip
    measured = measuring.measure(extra.path, feeds, runs=runs, providers=runnable)
    return _built(extra.name, precision, requirements, how, files, extra.path, feeds, measured,
                  measured_with=runnable)  # fmt: skip


def _check_interface(extra: ExtraVariant, facts: OnnxFacts, reference: OnnxFacts) -> None:
    """Variants of one release are interchangeable: same input and output names and types."""
    want = ([(i.name, i.dtype) for i in reference.inputs],
            [(o.name, o.dtype) for o in reference.outputs])  # fmt: skip
    got = ([(i.name, i.dtype) for i in facts.inputs], [(o.name, o.dtype) for o in facts.outputs])
    if got != want:
        raise ModelError(
            f"--extra-variant {extra.name}: {extra.path} has inputs/outputs {got}, the model has"
            f" {want}; every variant of a release must take and give the same tensors"
        )


def _spans(model: onnx.ModelProto, files: dict[str, bytes]) -> dict[str, list[Any]]:
    main = next(iter(files))
    out: dict[str, list[Any]] = {main: onnxmodel.tensor_spans(model, files[main])}
    for ext in onnxmodel.external_files(model):
        out[ext.path] = list(ext.spans)
    return out
