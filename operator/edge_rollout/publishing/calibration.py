"""Calibration inputs for static int8 quantization, given by the user as .npz / .npy files.

`--calibration FILE.npz`: arrays named after the model's inputs, the first axis indexing samples
(one more axis than the input, or the input's own batch axis). `--calibration DIR`: every `*.npz`
in it is one feed (arrays named after the inputs, used as they are), or every `*.npy` when the
model has a single input. Must not quantize, measure or write the store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_rollout.api.manifest import TensorInfo
from edge_rollout.publishing.feeding import Feed
from edge_rollout.publishing.onnxmodel import ModelError

MAX_SAMPLES = 512


def load(path: Path, inputs: list[TensorInfo]) -> list[Feed]:
    """The calibration feeds in `path`, checked against the model's inputs (names and ranks)."""
    if path.is_dir():
        feeds = _from_dir(path, inputs)
    elif path.suffix == ".npz":
        feeds = _split(_read_npz(path), inputs, path)
    else:
        raise ModelError(f"--calibration {path}: give an .npz file or a directory of .npz/.npy")
    if not feeds:
        raise ModelError(f"--calibration {path}: no samples found")
    for i, feed in enumerate(feeds):
        _check(feed, inputs, f"{path} sample {i}")
    return feeds[:MAX_SAMPLES]


def _read_npz(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ModelError(f"--calibration {path}: not a readable .npz ({exc})") from exc


def _from_dir(path: Path, inputs: list[TensorInfo]) -> list[Feed]:
    npz = sorted(path.glob("*.npz"))
    if npz:
        return [_read_npz(f) for f in npz]
    npy = sorted(path.glob("*.npy"))
    if npy and len(inputs) != 1:
        raise ModelError(
            f"--calibration {path}: .npy files only work for a model with one input; this one"
            f" has {len(inputs)}: use .npz files with arrays named after the inputs"
        )
    return [{inputs[0].name: np.load(f, allow_pickle=False)} for f in npy]


def _split(arrays: dict[str, npt.NDArray[np.generic]], inputs: list[TensorInfo], path: Path) -> (
    list[Feed]
):  # fmt: skip
    """One feed per sample along the first axis of every array."""
    missing = sorted({i.name for i in inputs} - set(arrays))
    if missing:
        raise ModelError(f"--calibration {path}: no array for input(s) {', '.join(missing)}")
    counts = {len(arrays[i.name]) for i in inputs}
    if len(counts) != 1:
        raise ModelError(f"--calibration {path}: inputs have different sample counts {counts}")
    feeds: list[Feed] = []
    for n in range(counts.pop()):
        feed: Feed = {}
        for info in inputs:
            a = arrays[info.name]
            feed[info.name] = a[n] if a.ndim == len(info.shape) + 1 else a[n : n + 1]
        feeds.append(feed)
    return feeds


def _check(feed: Feed, inputs: list[TensorInfo], where: str) -> None:
    for info in inputs:
        if info.name not in feed:
            raise ModelError(f"--calibration {where}: no array for input {info.name!r}")
        value = feed[info.name]
        if info.shape and value.ndim != len(info.shape):
            raise ModelError(
                f"--calibration {where}: input {info.name!r} has {value.ndim} dimensions,"
                f" the model wants {len(info.shape)} ({info.shape})"
            )
        feed[info.name] = value.astype(np.dtype(info.dtype), copy=False)
