"""Fixtures for store tests: nginx serving a directory on loopback, small ONNX models, magika.

Import the fixtures into a test module (`nginx = store_fixtures.nginx`) to use them; they need no
conftest registration. Every process started here is stopped by the fixture that started it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_rollout.cli.main import build_parser
from edge_rollout.testing.controlplane import free_port
from edge_rollout.testing.models import magika_model_path
from edge_rollout.testing.nginx import NGINX, Nginx, NginxServer

__all__ = [
    "NGINX",
    "Nginx",
    "build_mlp",
    "free_port",
    "magika_model",
    "nginx",
    "publish_mlp",
    "small_model",
]
CLI = [sys.executable, "-m", "edge_rollout.cli.main"]


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    """nginx (Debian nginx-light) in the foreground serving `tmp_path/store` on a free port."""
    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} missing: run hack/install-debian-packages.sh (package nginx-light)")
    with NginxServer(tmp_path / "store", tmp_path / "nginx") as server:
        yield server


def build_mlp(
    path: Path,
    seed: int = 0,
    hidden: int = 256,
    scale: float = 0.0,
    head_only: bool = False,
    base_seed: int | None = None,
) -> Path:
    """A small float32 classifier (MatMul, Add, Relu, MatMul, Softmax) built with `onnx`.

    With `base_seed`, weights start from that model's and drift by `scale` (relative), or only the
    output layer changes when `head_only`.
    """
    rng = np.random.default_rng(base_seed if base_seed is not None else seed)
    w1 = rng.standard_normal((64, hidden)).astype(np.float32) * 0.1
    b1 = rng.standard_normal(hidden).astype(np.float32) * 0.1
    w2 = rng.standard_normal((hidden, 10)).astype(np.float32) * 0.1
    drift = np.random.default_rng(seed + 1000)
    if base_seed is not None and scale:
        tensors = [w2] if head_only else [w1, b1, w2]
        for t in tensors:
            t *= (1 + scale * drift.standard_normal(t.shape)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Add", ["h", "b1"], ["hb"], name="bias1"),
            helper.make_node("Relu", ["hb"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["logits"], name="fc2"),
            helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        [
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edge-rollout-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    """A 70 KB float32 MLP classifier."""
    return build_mlp(tmp_path / "mlp.onnx")


@pytest.fixture(scope="session")
def magika_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """magika's real 3 MB ONNX classifier, unzipped from its cached PyPI wheel."""
    found = magika_model_path(tmp_path_factory.mktemp("magika") / "model.onnx")
    if isinstance(found, str):
        pytest.skip(found)
    return found


def cli(*argv: str) -> int:
    """`edge-rollout ARGV...` run in this process; its exit code."""
    args = build_parser().parse_args(list(argv))
    return int(args.handler(args) or 0)


def publish_mlp(
    work: Path,
    versions: Sequence[str] = ("1.0", "2.0"),
    variants: str = "fp32",
    samples: int = 1,
) -> tuple[Path, str]:
    """A key made with `edge-rollout keygen` and the same small MLP published as model `m` at
    each of `versions` into `work/store` by the real CLI. Returns (store, public key PEM)."""
    subprocess.run([*CLI, "keygen", str(work / "key")], check=True, capture_output=True)
    model = build_mlp(work / "mlp.onnx")
    for version in versions:
        subprocess.run(
            [*CLI, "publish", str(model), "--name", "m", "--version", version, "--store",
             str(work / "store"), "--key", str(work / "key"), "--variants", variants,
             "--runs", "2", "--samples", str(samples)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return work / "store", (work / "key.pub").read_text()
