"""What a publish is asked to do (`PublishRequest`) and how it reports progress (`Progress`).

The command line builds a request from its flags and implements `Progress` with progress bars;
tests and benches pass `SILENT`. Validation of the request happens here, before anything is read.
Must not parse arguments, print or touch the store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, cast, get_args

from edge_rollout.api.modeldeployment import AcceleratorClass, Precision
from edge_rollout.store import keys

BUILT_IN: tuple[Precision, ...] = ("fp32", "fp16", "int8", "int4")
NAME = re.compile(r"[a-z0-9]([-a-z0-9._]*[a-z0-9])?")
GPU_PROVIDERS = (
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "ROCMExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)
CPU = ("CPUExecutionProvider",)


class Progress(Protocol):
    """Where a publish reports what it is doing; `task` names a step (one bar each)."""

    def start(self, task: str, total: int) -> None:
        """A step begins; `total` units of work (files' bytes, variants)."""

    def advance(self, task: str, amount: int) -> None:
        """`amount` more units of `task` are done."""

    def note(self, message: str) -> None:
        """A line for the user (a variant not measured, a release already published)."""


class _Silent:
    def start(self, task: str, total: int) -> None:
        pass

    def advance(self, task: str, amount: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass


SILENT: Progress = _Silent()


@dataclass(frozen=True)
class ExtraVariant:
    """A user-supplied variant: `NAME=PATH[:CLASS[:EP+EP...[:PRECISION]]]`."""

    name: str
    path: Path
    accelerator_class: AcceleratorClass
    providers: tuple[str, ...]
    precision: Precision | None
    """None: read from the model (quantization operators, float16 weights)."""


@dataclass(frozen=True)
class PublishRequest:
    """One release to publish: the model, where and under which name, and how to measure it."""

    model: Path
    name: str
    version: str
    store: Path
    key: Path
    variants: tuple[str, ...] | None = None
    """Built-in variants asked for; None: every one that can be built from this model (one that
    fails to build or to run is then left out with a note rather than failing the publish)."""
    extra_variants: tuple[ExtraVariant, ...] = ()
    base_version: str | None = None
    """Release to delta against: None for the latest published, "" for none."""
    trusted_keys: tuple[keys.Trusted, ...] = ()
    """Keys besides `key` whose signatures make an earlier release (the delta base, golden_from)
    valid: the old key while rotating to a new one."""
    runs: int = 30
    samples: int = 4
    calibration: Path | None = None
    input_shapes: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Concrete shapes for inputs with dynamic dimensions (`--input-shape NAME=1x3x320x320`)."""
    golden_from: str | None = None
    golden_atol: float = 0.05
    golden_min_cosine: float = 0.99
    golden_budget: int | None = None
    """Plain bytes of golden inputs + outputs per variant; None: `content.golden.budget` of the
    smallest variant file (5% of it, at least 256 KiB). Over it, fewer cases (never zero)."""

    def check(self) -> None:
        """`ValueError` naming the field and the fix when the request cannot be published."""
        if self.variants is None:
            return self._check_names()
        unknown = [n for n in self.variants if n not in BUILT_IN]
        if unknown or not self.variants:
            raise ValueError(f"unknown variants {unknown}: choose from fp32, fp16, int8, int4")
        self._check_names()

    def _check_names(self) -> None:
        if not NAME.fullmatch(self.name) or len(self.name) > 63:
            raise ValueError(f"--name {self.name!r}: use lower-case letters, digits, '-', '.', '_'")
        seen = [e.name for e in self.extra_variants]
        if len(set(seen)) != len(seen):
            raise ValueError(f"--extra-variant names repeat: {', '.join(seen)}")


def parse_extra(spec: str) -> ExtraVariant:
    """`int8-npu=model_hailo.onnx:npu:HailoExecutionProvider:int8` (CLASS defaults to cpu, the
    providers to the class's usual ones, the precision to what the model shows)."""
    name, sep, rest = spec.partition("=")
    parts = rest.split(":")
    if not sep or not parts[0] or len(parts) > 4:
        raise ValueError(
            f"--extra-variant {spec!r}: write NAME=PATH[:CLASS[:EP+EP...[:PRECISION]]]"
        )
    if not NAME.fullmatch(name) or len(name) > 63 or name in BUILT_IN:
        raise ValueError(
            f"--extra-variant {name!r}: use a lower-case name other than fp32/fp16/int8/int4"
        )
    path, cls, eps, precision = [*parts, "", "", ""][:4]
    if (cls or "cpu") not in get_args(AcceleratorClass):
        raise ValueError(f"--extra-variant {name}: class {cls!r} is not npu, gpu or cpu")
    if precision and precision not in BUILT_IN:
        raise ValueError(
            f"--extra-variant {name}: precision {precision!r} is not fp32/fp16/int8/int4"
        )
    providers = tuple(p for p in eps.split("+") if p) or _default_providers(name, cls or "cpu")
    accelerator = cast(AcceleratorClass, cls or "cpu")
    return ExtraVariant(name, Path(path), accelerator, providers, precision or None)


def _default_providers(name: str, cls: str) -> tuple[str, ...]:
    if cls == "npu":
        raise ValueError(
            f"--extra-variant {name}: an npu variant needs its execution providers, e.g."
            f" {name}=model.onnx:npu:QNNExecutionProvider"
        )
    return GPU_PROVIDERS if cls == "gpu" else CPU


def parse_input_shape(spec: str) -> tuple[str, tuple[int, ...]]:
    """`images=1x3x320x320` as (name, shape); `ValueError` naming the flag otherwise.

    >>> parse_input_shape("images=1x3x320x320")
    ('images', (1, 3, 320, 320))
    """
    name, sep, dims = spec.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) < 0:
        raise ValueError(f"--input-shape {spec!r}: write NAME=DIMxDIM..., e.g. images=1x3x320x320")
    return name, shape
