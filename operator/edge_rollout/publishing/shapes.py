"""Concrete input shapes for a model with dynamic dimensions: the plans to try, in order.

Pure: from the inputs' declared shapes (`TensorInfo`), the user's `--input-shape` overrides and
sizes the model states in its metadata (`imgsz`), it lists shape plans from the most plausible to
the least; `publishing.probing` runs them in onnxruntime until one works. Batch-like dimensions
become 1, dimensions sharing a symbolic name take one value, image height and width try the
metadata's size and then common image sizes, other dimensions climb a short ladder.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from edge_rollout.api.manifest import TensorInfo

Shapes = dict[str, tuple[int, ...]]
LADDER = (1, 2, 8, 32, 224, 320, 512, 640)
"""Sizes tried in order for a dynamic dimension that is neither batch-like nor spatial."""
SPATIAL = (224, 320, 640, 32, 64, 128, 256, 512)
"""Sizes tried for image height and width when the model does not state its own."""
MAX_PLANS = 48
BATCH = re.compile(r"(batch(_?size)?|n|bs|b|unk__\d+|p2o\.DynamicDimension\.0)", re.I)
SPATIAL_NAME = re.compile(r"(height|width|h|w|img_?[hw]\w*|image_?[hw]\w*)", re.I)
SIZE_KEYS = ("imgsz", "img_size", "image_size", "input_size")


@dataclass(frozen=True)
class Dim:
    """One dynamic dimension: where it is and which group (shared name) it belongs to."""

    input: str
    axis: int
    group: str
    kind: str
    """batch, spatial or other."""


def is_dynamic(d: int | str) -> bool:
    """A dimension without a fixed positive size (a name, `?`, 0 or -1)."""
    return isinstance(d, str) or d <= 0


def _kind(info: TensorInfo, axis: int, name: str) -> str:
    rank = len(info.shape)
    if BATCH.fullmatch(name) or (axis == 0 and rank >= 2 and not SPATIAL_NAME.fullmatch(name)):
        return "batch"
    image = rank == 4 and axis >= 2 and info.shape[1] in (1, 3, 4)
    if SPATIAL_NAME.fullmatch(name) or image:
        return "spatial"
    return "other"


def dynamic_dims(inputs: Sequence[TensorInfo]) -> list[Dim]:
    """Every dynamic dimension; named ones share a group, unnamed ones (`?`, 0, -1) stand alone."""
    dims: list[Dim] = []
    for info in inputs:
        for axis, d in enumerate(info.shape):
            if not is_dynamic(d):
                continue
            name = d if isinstance(d, str) and d not in ("", "?") else ""
            group = name or f"{info.name}[{axis}]"
            dims.append(Dim(info.name, axis, group, _kind(info, axis, name)))
    return dims


def metadata_sizes(metadata: Mapping[str, str]) -> list[int]:
    """Image sizes a model states in its metadata, e.g. Ultralytics' `imgsz: [320, 320]`.

    >>> metadata_sizes({"imgsz": "[320, 320]"})
    [320]
    """
    found: list[int] = []
    for key in SIZE_KEYS:
        raw = metadata.get(key, "")
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            value = [int(x) for x in re.findall(r"\d+", raw)]
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, int) and v > 0 and v not in found:
                found.append(v)
    return found


def _candidates(kind: str, sizes: Sequence[int]) -> list[int]:
    if kind == "batch":
        return [1]
    if kind == "spatial":
        return [*sizes, *(s for s in SPATIAL if s not in sizes)]
    return list(LADDER)


def _shapes(inputs: Sequence[TensorInfo], values: Mapping[str, int], dims: list[Dim]) -> Shapes:
    by_place = {(d.input, d.axis): values[d.group] for d in dims}
    return {
        i.name: tuple(
            by_place[(i.name, a)] if is_dynamic(d) else int(d) for a, d in enumerate(i.shape)
        )
        for i in inputs
    }


def shape_plans(
    inputs: Sequence[TensorInfo],
    overrides: Mapping[str, tuple[int, ...]],
    sizes: Sequence[int] = (),
) -> Iterator[Shapes]:
    """Shape plans to try, most plausible first; the user's overrides are kept as given.

    Each group climbs its own list together with the others (step k takes every group's k-th
    candidate); then groups that are not batch-like may also be 1 (an unnamed batch axis).

    >>> x = TensorInfo(name="x", dtype="float32", shape=["batch", 3, "height", "width"])
    >>> [p["x"] for p in itertools.islice(shape_plans([x], {}, [320]), 2)]
    [(1, 3, 320, 320), (1, 3, 224, 224)]
    """
    free = [i for i in inputs if i.name not in overrides]
    dims = dynamic_dims(free)
    kinds = {d.group: d.kind for d in dims}
    lists = {g: _candidates(k, sizes) for g, k in kinds.items()}
    steps = max((len(c) for c in lists.values()), default=1)
    seen: list[Shapes] = []
    flips = [g for g, k in kinds.items() if k != "batch"]
    for ones in _subsets(flips):
        for k in range(steps):
            values = {g: 1 if g in ones else c[min(k, len(c) - 1)] for g, c in lists.items()}
            plan = {**_shapes(free, values, dims), **overrides}
            if plan not in seen and len(seen) < MAX_PLANS:
                seen.append(plan)
                yield plan


def _subsets(groups: list[str]) -> Iterator[frozenset[str]]:
    """The empty set first, then single groups, then pairs...: which groups to pin at 1."""
    for size in range(len(groups) + 1):
        for combo in itertools.combinations(groups, size):
            yield frozenset(combo)


def check_overrides(inputs: Sequence[TensorInfo], overrides: Mapping[str, tuple[int, ...]]) -> None:
    """`ValueError` for an override naming no input or contradicting the model's fixed sizes."""
    by_name = {i.name: i for i in inputs}
    for name, shape in overrides.items():
        info = by_name.get(name)
        if info is None:
            known = ", ".join(by_name) or "none"
            raise ValueError(f"--input-shape {name}=...: the model has no input {name!r} ({known})")
        fixed = [(a, d) for a, d in enumerate(info.shape) if not is_dynamic(d)]
        if len(shape) != len(info.shape) or any(shape[a] != d for a, d in fixed):
            raise ValueError(
                f"--input-shape {name}={format_shape(shape)}: input {name!r} has shape"
                f" {info.shape}; give {len(info.shape)} sizes keeping the fixed ones"
            )


def format_shape(shape: Sequence[int]) -> str:
    """`1x3x320x320` (as `--input-shape` takes it); `scalar` for rank 0."""
    return "x".join(str(d) for d in shape) if shape else "scalar"
