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
from edge_rollout.publishing import (
    calibration,
    feeding,
    files,
    measuring,
    onnxmodel,
    probing,
    shapes,
    variants,
)
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
    "int4": Requirements(accelerator_class="cpu"),
}
"""Where each built-in variant is meant to run; the measured memory is added per variant."""
AS_GIVEN = Requirements(accelerator_class="cpu")
"""The model as given was measured on this machine's CPU, whatever its precision."""
MAIN_FILE = "model.onnx"
"""Every variant's model file has this name in its manifest (external data keeps its own)."""
QUANTIZED_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
     "QLinearMatMul", "MatMulInteger", "ConvInteger", "MatMulNBits", "DynamicQuantizeMatMul",
     "QAttention", "QGemm", "QLinearAdd", "QLinearMul"}
)  # fmt: skip
BUILDABLE: dict[str, tuple[Precision, ...]] = {
    "fp32": ("fp16", "int8", "int4"),
    "fp16": (),
    "int8": (),
    "int4": (),
}
"""The variants built from a model of each precision: an int8, int4 or fp16 model is published
as given, never re-quantized or widened."""
INT4_DEFAULT_SHARE = 0.5
INT4_DEFAULT_WEIGHTS = 1 << 18
"""int4 is built unasked when the MatMul and embedding weights it can quantize are at least
INT4_DEFAULT_SHARE of the model's float weights and at least INT4_DEFAULT_WEIGHTS of them (1 MiB
in float32): LLM-style models, not a small MLP, whose per-block scales would eat the saving.
`--variants ...,int4` builds it for any model that has such weights."""
INTEGER_WEIGHTS = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4,
                   onnx.TensorProto.UINT4)  # fmt: skip
FOUR_BIT_WEIGHTS = (onnx.TensorProto.INT4, onnx.TensorProto.UINT4)


@dataclass(frozen=True)
class Built:
    """One variant's files on disk by published path (model first), how it was made, and what
    was measured."""

    name: str
    precision: Precision
    requirements: Requirements
    built_by: str
    files: dict[str, Path]
    spans: dict[str, list[Any]]
    facts: OnnxFacts
    inputs: list[feeding.Feed]
    measured: measuring.Measured | None
    measured_with: tuple[str, ...] = measuring.CPU
    not_measured: str = ""

    @property
    def file_bytes(self) -> int:
        return files.size(list(self.files.values()))

    @property
    def input_shapes(self) -> dict[str, list[int]]:
        """The concrete input shapes it was measured at (those of the first sample)."""
        first = self.inputs[0] if self.inputs else {}
        return {name: list(value.shape) for name, value in first.items()}


def infer_precision(model: onnx.ModelProto) -> Precision:
    """int4 if the graph has 4-bit MatMulNBits or most weights are 4-bit; int8 if it quantizes
    otherwise (at any depth) or most weights are 8/4-bit integers; fp16 if most float weights
    are float16; else fp32. Weights are initializers and `Constant` values of every subgraph."""
    nodes = [n for g in onnxmodel.graphs(model.graph) for n in g.node]
    weights: Counter[int] = Counter()
    for _, t in onnxmodel.all_tensors(model.graph):
        weights[t.data_type] += int(np.prod(t.dims)) if t.dims else 1
    floats = weights[onnx.TensorProto.FLOAT] + weights[onnx.TensorProto.DOUBLE]
    integers = sum(weights[d] for d in INTEGER_WEIGHTS)
    if any(_four_bit(n) for n in nodes) or sum(weights[d] for d in FOUR_BIT_WEIGHTS) > floats:
        return "int4"
    if any(n.op_type in QUANTIZED_OPS for n in nodes):
        return "int8"
    if integers > floats + weights[onnx.TensorProto.FLOAT16]:
        return "int8"
    return "fp16" if weights[onnx.TensorProto.FLOAT16] > floats else "fp32"


def _four_bit(node: onnx.NodeProto) -> bool:
    """A MatMulNBits of 4 bits (its `bits` attribute, 4 when absent)."""
    if node.op_type != "MatMulNBits":
        return False
    bits = next((a.i for a in node.attribute if a.name == "bits"), 4)
    return bits == 4


def variant_names(req: PublishRequest, given: Precision, model: onnx.ModelProto) -> list[str]:
    """The built-in variants to publish, the model as given (named by its precision) first;
    unasked, int4 only for LLM-style models (INT4_DEFAULT_SHARE)."""
    asked = _unasked(model) if req.variants is None else req.variants
    return [given, *[n for n in asked if n != given and n in BUILDABLE[given]]]


def _unasked(model: onnx.ModelProto) -> tuple[str, ...]:
    quantized, total = variants.int4_weights(model)
    if quantized >= INT4_DEFAULT_WEIGHTS and quantized >= INT4_DEFAULT_SHARE * total:
        return BUILT_IN
    return tuple(n for n in BUILT_IN if n != "int4")


def sample_feeds(
    req: PublishRequest, model: onnx.ModelProto, facts: OnnxFacts, progress: Progress
) -> list[feeding.Feed]:
    """Inputs to measure agreement on: the calibration samples if given, else random ones at
    shapes onnxruntime runs the model at (dynamic dimensions probed, or `--input-shape`)."""
    count = max(req.samples, 2)
    if req.calibration is not None:
        found = calibration.load(req.calibration, facts.inputs)
        return (found * count)[:count] if len(found) < count else found[:count]
    ranges = feeding.int_ranges(model, facts.inputs)
    sizes = shapes.metadata_sizes(onnxmodel.metadata(model))
    probe = probing.probe_shapes(req.model, facts.inputs, req.input_shapes, ranges, sizes)
    if probe.dynamic:
        progress.note(f"dynamic input shapes: measured at {probing.describe(probe.shapes)}")
    return feeding.sample_inputs(facts.inputs, count, probe.shapes, ranges)


def _skipped(req: PublishRequest, given: Precision, names: list[str], progress: Progress) -> None:
    skipped = [n for n in req.variants or () if n not in names]
    if skipped:
        progress.note(
            f"{req.model.name} is already {given}: published as given (variant {given}); not"
            f" built from it: {', '.join(skipped)}"
        )


def build_variants(
    req: PublishRequest, model: onnx.ModelProto, tmp: Path, progress: Progress
) -> list[Built]:
    """Each variant's bytes, measured in onnxruntime; the model as given first (the reference)."""
    facts = onnxmodel.facts(model)
    given = infer_precision(model)
    order = variant_names(req, given, model)
    _skipped(req, given, order, progress)
    feeds = sample_feeds(req, model, facts, progress)
    built: list[Built] = []
    task = "build + measure variants"
    progress.start(task, len(order) + len(req.extra_variants))
    for name in order:
        try:
            built.append(_build_one(req, model, name, given, feeds, tmp, progress))
        except ModelError as exc:
            if name == given or req.variants is not None:
                raise
            progress.note(f"{name}: left out: {exc}")
        progress.advance(task, 1)
    for extra in req.extra_variants:
        built.append(build_extra(extra, facts, feeds, req.runs, progress))
        progress.advance(task, 1)
    wanted = {given, *(req.variants or BUILT_IN)}
    return [b for b in built if b.name in wanted or b.name not in BUILT_IN]


def _build_one(
    req: PublishRequest,
    model: onnx.ModelProto,
    name: str,
    given: Precision,
    feeds: list[feeding.Feed],
    tmp: Path,
    progress: Progress,
) -> Built:
    paths, path, how = _variant_files(req, model, name, given, tmp, progress)
    measured = measuring.measure(path, feeds, runs=req.runs)
    requirements = AS_GIVEN if name == given else REQUIREMENTS[name]
    return _built(name, cast(Precision, name), requirements, how, paths, path, feeds, measured)


def _built(
    name: str,
    precision: Precision,
    requirements: Requirements,
    how: str,
    paths: dict[str, Path],
    path: Path,
    feeds: list[feeding.Feed],
    measured: measuring.Measured | None,
    **extra: Any,
) -> Built:
    model = onnxmodel.load(path)
    spans = _spans(model, paths)
    facts = onnxmodel.facts(model)
    return Built(name, precision, requirements, how, paths, spans, facts, feeds, measured, **extra)


def _variant_files(
    req: PublishRequest,
    model: onnx.ModelProto,
    name: str,
    given: Precision,
    tmp: Path,
    progress: Progress,
) -> tuple[dict[str, Path], Path, str]:
    """The variant's files (written under `tmp`, or the model as given), its model file, and
    how it was made."""
    src = req.model
    if name == given:
        return model_files(src, model), src, "as given"
    path = tmp / f"{name}.onnx"
    if name == "fp16":
        variants.build_fp16(src, path, progress.note)
        how = "float16 conversion"
    elif name == "int4":
        variants.build_int4(src, path)
        block = variants.INT4_BLOCK
        how = f"onnxruntime MatMulNBits int4 weight-only (symmetric, blocks of {block})"
    elif req.calibration is not None:
        feeds = calibration.load(req.calibration, onnxmodel.facts(model).inputs)
        variants.build_int8_static(src, list(feeds), path)
        how = f"onnxruntime static int8 (QDQ, {len(feeds)} calibration samples)"
    else:
        variants.build_int8(src, path)
        how = "onnxruntime dynamic int8"
    return model_files(path, onnxmodel.load(path)), path, how


def model_files(src: Path, model: onnx.ModelProto) -> dict[str, Path]:
    """The model file and the external data files next to it, by published path."""
    out = {MAIN_FILE: src}
    for ext in onnxmodel.external_files(model):
        out[ext.path] = src.parent / ext.path
    return out


def build_extra(
    extra: ExtraVariant,
    reference: OnnxFacts,
    feeds: list[feeding.Feed],
    runs: int,
    progress: Progress,
) -> Built:
    """A user-supplied variant, measured on its providers when this machine has one of them."""
    model = onnxmodel.load(extra.path)
    _check_interface(extra, onnxmodel.facts(model), reference)
    paths = model_files(extra.path, model)
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
        return _built(extra.name, precision, requirements, how, paths, extra.path, feeds, None,
                      measured_with=(), not_measured=reason)  # fmt: skip
    measured = measuring.measure(extra.path, feeds, runs=runs, providers=runnable)
    return _built(extra.name, precision, requirements, how, paths, extra.path, feeds, measured,
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


def _spans(model: onnx.ModelProto, paths: dict[str, Path]) -> dict[str, list[Any]]:
    main = next(iter(paths))
    with files.mapped(paths[main]) as data:
        out: dict[str, list[Any]] = {main: onnxmodel.tensor_spans(model, data)}
    for ext in onnxmodel.external_files(model):
        out[ext.path] = list(ext.spans)
    return out
