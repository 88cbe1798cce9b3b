"""Finds input shapes a model with dynamic dimensions really runs at, by trying them in onnxruntime.

Tries the plans of `publishing.shapes` one by one on a single CPU session (one sample each)
and keeps the first that runs; when none does, the error names the inputs, the shapes tried,
the last onnxruntime error and the `--input-shape` flag. A model without dynamic dimensions is
not run here. Must not build variants, measure or write the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_rollout.api.manifest import TensorInfo
from edge_rollout.publishing import feeding, shapes
from edge_rollout.publishing.onnxmodel import ModelError


@dataclass(frozen=True)
class Probe:
    """The shapes chosen, whether any dimension was dynamic, and the plans tried before them."""

    shapes: shapes.Shapes
    dynamic: bool
    tried: tuple[str, ...] = ()


def describe(plan: Mapping[str, Sequence[int]]) -> str:
    """`x=1x3x320x320, y=1x4` for messages."""
    return ", ".join(f"{name}={shapes.format_shape(shape)}" for name, shape in plan.items())


def _session(model: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a bad model
        raise ModelError(f"{model.name}: onnxruntime cannot load it: {exc}") from exc


def probe_shapes(
    model: Path,
    inputs: Sequence[TensorInfo],
    overrides: Mapping[str, tuple[int, ...]],
    ranges: Mapping[str, feeding.IntRange],
    sizes: Sequence[int] = (),
) -> Probe:
    """The first shape plan onnxruntime runs the model at (see the module docstring)."""
    shapes.check_overrides(inputs, overrides)
    dynamic = [i for i in inputs if any(shapes.is_dynamic(d) for d in i.shape)]
    plans = list(shapes.shape_plans(inputs, overrides, sizes))
    if not dynamic:
        return Probe(plans[0], dynamic=False)
    session = _session(model)
    tried: list[str] = []
    last = ""
    for plan in plans:
        feed = feeding.sample_inputs(inputs, 1, plan, ranges)[0]
        try:
            session.run(None, feed)
        except Exception as exc:  # any onnxruntime failure means: try the next plan
            tried.append(describe(plan))
            last = str(exc).splitlines()[0][:300]
            continue
        return Probe(plan, dynamic=True, tried=tuple(tried))
    raise ModelError(_failure(model, dynamic, tried, last))


def _failure(model: Path, dynamic: list[TensorInfo], tried: list[str], last: str) -> str:
    names = ", ".join(f"{i.name!r} (shape {i.shape})" for i in dynamic)
    example = next(
        f"{i.name}={'x'.join('1' if shapes.is_dynamic(d) else str(d) for d in i.shape)}"
        for i in dynamic
    )
    return (
        f"{model.name}: input {names} has dynamic dimensions and onnxruntime ran the model at"
        f" none of the {len(tried)} shapes tried ({'; '.join(tried[:6])}"
        f"{'; ...' if len(tried) > 6 else ''}); last error: {last}. Give the shape the model"
        f" takes with --input-shape, e.g. --input-shape {example} with the real sizes"
        " (repeatable, one per input)"
    )
