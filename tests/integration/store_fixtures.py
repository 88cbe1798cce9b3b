"""Fixtures for store tests: nginx serving a directory on loopback, small ONNX models, magika.

Import the fixtures into a test module (`nginx = store_fixtures.nginx`) to use them; they need no
conftest registration. Every process started here is stopped by the fixture that started it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

NGINX = "/usr/sbin/nginx"
MAGIKA_VERSION = "1.0.3"
WHEEL_CACHE = Path.home() / ".cache" / "edge-rollout" / "wheels"

NGINX_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    types {{ application/json json; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    """A running nginx serving `root` at `url`."""

    root: Path
    url: str
    access_log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start listening within 10 s")


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Nginx]:
    """nginx (Debian nginx-light) in the foreground serving `tmp_path/store` on a free port."""
    if not Path(NGINX).exists():
        pytest.skip(f"{NGINX} missing: run hack/install-debian-packages.sh (package nginx-light)")
    root, run = tmp_path / "store", tmp_path / "nginx"
    root.mkdir()
    run.mkdir()
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    conf = run / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, tmp=run, port=port, root=root))
    proc = subprocess.Popen(
        [NGINX, "-p", str(run), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, proc, run / "error.log")
        yield Nginx(root, f"http://127.0.0.1:{port}", run / "access.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def magika_model_path(dest: Path) -> Path | str:
    """magika's classifier from its PyPI wheel (cached); a skip reason string if unavailable."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(WHEEL_CACHE.glob(f"magika-{MAGIKA_VERSION}-*.whl"))
    if not wheels:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            f"magika=={MAGIKA_VERSION}",
            "-d",
            str(WHEEL_CACHE),
            "--quiet",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        wheels = sorted(WHEEL_CACHE.glob(f"magika-{MAGIKA_VERSION}-*.whl"))
        if not wheels:
            return f"could not download the magika {MAGIKA_VERSION} wheel: {proc.stderr[-300:]}"
    with zipfile.ZipFile(wheels[0]) as z:
        name = next(n for n in z.namelist() if n.endswith("/model.onnx"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        with z.open(name) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out)
    return dest


@pytest.fixture(scope="session")
def magika_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """magika's real 3 MB ONNX classifier, unzipped from its cached PyPI wheel."""
    found = magika_model_path(tmp_path_factory.mktemp("magika") / "model.onnx")
    if isinstance(found, str):
        pytest.skip(found)
    return found
