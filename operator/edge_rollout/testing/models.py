"""Real ONNX models for tests and the demo: magika's classifier from its PyPI wheel, and
fine-tuned or broken copies of a model (weights changed with numpy, graph untouched).

Nothing is downloaded from a model hub: the wheel comes from PyPI once and is cached.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

MAGIKA_VERSION = "1.0.3"
WHEEL_CACHE = Path.home() / ".cache" / "edge-rollout" / "wheels"


def magika_model_path(dest: Path, version: str = MAGIKA_VERSION) -> Path | str:
    """magika's classifier from its PyPI wheel (cached); a skip reason string if unavailable."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(WHEEL_CACHE.glob(f"magika-{version}-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            f"magika=={version}",
            "-d",
            str(WHEEL_CACHE),
            "--quiet",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        wheels = sorted(WHEEL_CACHE.glob(f"magika-{version}-*.whl"))
        if not wheels:
            return f"could not download the magika {version} wheel: {proc.stderr[-300:]}"
    with zipfile.ZipFile(wheels[0]) as z:
        name = next(n for n in z.namelist() if n.endswith("/model.onnx"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        with z.open(name) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
    return dest


def big_floats(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Float initializers of 1024 values or more (the weights worth changing)."""
    return [
        t
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) >= 1024
    ]


def perturb(
    model: onnx.ModelProto,
    pick: Callable[[list[onnx.TensorProto]], list[onnx.TensorProto]],
    scale: float,
    share: float = 1.0,
    seed: int = 1,
) -> onnx.ModelProto:
    """A copy of `model` whose picked tensors drift by `scale` (relative) on `share` of values."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    rng = np.random.default_rng(seed)
    for t in pick(big_floats(out)):
        a = numpy_helper.to_array(t).astype(np.float32)
        mask = rng.random(a.shape) < share
        a = np.where(mask, a * (1 + scale * rng.standard_normal(a.shape)), a).astype(np.float32)
        t.CopyFrom(numpy_helper.from_array(a, t.name))
    return out


def head_only(model: onnx.ModelProto, scale: float = 1e-2, seed: int = 1) -> onnx.ModelProto:
    """The last large float initializer (the classifier head) fine-tuned (`scale` relative)."""
    return perturb(model, lambda ts: ts[-1:], scale, seed=seed)
