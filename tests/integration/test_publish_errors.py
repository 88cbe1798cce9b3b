"""`edge-rollout publish` refuses bad input with a clear error and leaves the store consistent.

Runs the real command line as a user would (a subprocess), on real files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tests.integration import store_fixtures

small_model = store_fixtures.small_model


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, on a wide terminal so rich does not wrap the errors."""
    return subprocess.run([sys.executable, "-m", "edge_rollout.cli.main", *argv],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "COLUMNS": "400"})  # fmt: skip


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "release.key"
    assert run("keygen", str(path)).returncode == 0
    return path


def publish(model: Path, store: Path, key: Path, version: str = "1.0.0",
            *extra: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return run(
        "publish",
        str(model),
        "--name",
        "mlp",
        "--version",
        version,
        "--store",
        str(store),
        "--key",
        str(key),
        "--runs",
        "2",
        "--variants",
        "fp32",
        *extra,
    )


def visible_releases(store: Path) -> list[str]:
    """Versions a reader can see: a directory with both the index and its signature."""
    found = []
    for index in sorted(store.glob("models/*/*/index.json")):
        if (index.parent / "index.json.sig").exists():
            found.append(index.parent.name)
    return found


def unloadable_model(path: Path) -> Path:
    """Valid ONNX protobuf that onnxruntime cannot load: an operator no runtime implements."""
    node = helper.make_node("NoSuchOperator", ["x"], ["y"], domain="example.invalid")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])  # fmt: skip
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.invalid", 1)],
    )
    onnx.save(model, str(path))
    return path


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path, key: Path) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    result = publish(bogus, tmp_path / "store", key)
    assert result.returncode != 0
    assert "model.onnx" in result.stderr
    assert "ONNX" in result.stderr
    assert visible_releases(tmp_path / "store") == []


def test_a_model_path_that_does_not_exist_is_refused_as_missing(tmp_path: Path, key: Path) -> None:
    result = publish(tmp_path / "nowhere.onnx", tmp_path / "store", key)
    assert result.returncode != 0
    assert "nowhere.onnx: does not exist; check the path" in result.stderr
    assert "not an ONNX file" not in result.stderr


def test_a_model_onnxruntime_cannot_load_is_refused(tmp_path: Path, key: Path) -> None:
    result = publish(unloadable_model(tmp_path / "odd.onnx"), tmp_path / "store", key)
    assert result.returncode != 0
    assert "NoSuchOperator" in result.stderr or "onnxruntime" in result.stderr
    assert visible_releases(tmp_path / "store") == []


def test_a_store_that_cannot_be_written_is_refused(
    tmp_path: Path, key: Path, small_model: Path
) -> None:
    not_a_dir = tmp_path / "store"
    not_a_dir.write_text("a file where the store should be")
    result = publish(small_model, not_a_dir, key)
    assert result.returncode != 0
    assert str(not_a_dir) in result.stderr


def test_republishing_a_version_with_other_content_is_refused_and_changes_nothing(
    tmp_path: Path, key: Path, small_model: Path
) -> None:
    store = tmp_path / "store"
    assert publish(small_model, store, key).returncode == 0
    index = store / "models" / "mlp" / "1.0.0" / "index.json"
    before = index.read_bytes()
    other = store_fixtures.build_mlp(tmp_path / "other.onnx", seed=5)
    result = publish(other, store, key)
    assert result.returncode != 0
    assert "already published" in result.stderr
    assert "new version" in result.stderr
    assert index.read_bytes() == before
    assert visible_releases(store) == ["1.0.0"]


def test_a_known_conflict_is_refused_before_building_and_the_same_model_republishes(
    tmp_path: Path, key: Path, small_model: Path
) -> None:
    store = tmp_path / "store"
    assert publish(small_model, store, key).returncode == 0
    objects = sorted(p for p in store.rglob("*") if p.is_file())
    other = store_fixtures.build_mlp(tmp_path / "other.onnx", seed=5)
    result = publish(other, store, key)
    assert result.returncode != 0
    assert "is already published from another model file" in result.stderr
    assert sorted(p for p in store.rglob("*") if p.is_file()) == objects, "built before refusing"
    more = publish(small_model, store, key, "1.0.0", "--variants", "fp32,int8")
    assert more.returncode != 0
    assert "is already published with variants fp32" in more.stderr
    again = publish(small_model, store, key)
    assert again.returncode == 0, again.stderr
    assert "already published with the same content" in again.stdout + again.stderr
