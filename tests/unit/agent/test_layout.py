"""Model directories on disk: install, verified activation, current/previous links, removal."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from edge_rollout.api.manifest import Manifest
from edge_rollout_agent import layout
from edge_rollout_agent.layout import IntegrityError, ModelDir
from edge_rollout_agent.policy import Installed


def manifest_for(content: bytes, version: str, variant: str = "int8") -> Manifest:
    digest = hashlib.sha256(content).hexdigest()
    return Manifest.model_validate(
        {"model": "m", "version": version, "variant": variant,
         "files": [{"path": "model.onnx", "size": len(content), "digest": digest,
                    "chunks": [{"digest": digest, "size": len(content), "stored": 1}]}]}
    )  # fmt: skip


def install(model_dir: ModelDir, content: bytes, version: str) -> Installed:
    assembled = model_dir.base / f".tmp-{version}"
    assembled.mkdir(parents=True)
    (assembled / "model.onnx").write_bytes(content)
    return model_dir.install(assembled, manifest_for(content, version))


@pytest.fixture
def model_dir(tmp_path: Path) -> ModelDir:
    return ModelDir(tmp_path, "ns/dep")


def test_install_then_activate_points_current_at_a_stable_path(model_dir: ModelDir) -> None:
    item = install(model_dir, b"one", "1.0")
    assert model_dir.installed() == {item}
    model_dir.activate(item)
    stable = model_dir.data_dir / "models" / "ns" / "dep" / "current" / "model.onnx"
    assert stable.read_bytes() == b"one"
    assert model_dir.link("current") == item
    assert model_dir.link("previous") is None


def test_second_activation_keeps_previous_for_rollback(model_dir: ModelDir) -> None:
    old, new = install(model_dir, b"one", "1.0"), install(model_dir, b"two", "1.1")
    model_dir.activate(old)
    model_dir.activate(new)
    assert (model_dir.link("current"), model_dir.link("previous")) == (new, old)
    model_dir.activate(old)  # rollback: no download, just links
    assert (model_dir.link("current"), model_dir.link("previous")) == (old, new)


def test_a_corrupted_file_is_never_activated(model_dir: ModelDir) -> None:
    good, bad = install(model_dir, b"one", "1.0"), install(model_dir, b"two", "1.1")
    model_dir.activate(good)
    (model_dir.path(bad) / "model.onnx").write_bytes(b"twX")
    with pytest.raises(IntegrityError, match="sha256"):
        model_dir.activate(bad)
    assert model_dir.link("current") == good


def test_a_partial_directory_is_not_installed(model_dir: ModelDir) -> None:
    (model_dir.base / ".tmp-1.0").mkdir(parents=True)
    (model_dir.base / "1.0-int8").mkdir()
    assert model_dir.installed() == frozenset()


def test_remove_refuses_current_and_deletes_others(model_dir: ModelDir) -> None:
    old, new = install(model_dir, b"one", "1.0"), install(model_dir, b"two", "1.1")
    model_dir.activate(new)
    with pytest.raises(ValueError, match="current"):
        model_dir.remove(new)
    model_dir.remove(old)
    assert model_dir.installed() == {new}


def test_write_atomic_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "state.json"
    layout.write_atomic(target, b"1")
    layout.write_atomic(target, b"2")
    assert target.read_bytes() == b"2"
    assert os.listdir(target.parent) == ["state.json"]


def test_all_model_dirs(model_dir: ModelDir) -> None:
    install(model_dir, b"one", "1.0")
    assert layout.all_model_dirs(model_dir.data_dir) == [model_dir]


LONGEST_KEY = "n" * 63 + "/" + "d" * 253
"""A namespace and a ModelDeployment name at Kubernetes' limits (63 and 253 characters)."""


def test_names_at_the_kubernetes_limits_give_files_that_fit(tmp_path: Path) -> None:
    model_dir = ModelDir(tmp_path, LONGEST_KEY)
    item = install(model_dir, b"one", "1." + "0" * 126)  # a version of 128 characters
    model_dir.activate(item)
    model_dir.remove(install(model_dir, b"two", "2.0"))
    assert model_dir.link("current") == item
    marker = layout.state_file(tmp_path, "testing", LONGEST_KEY)
    layout.write_atomic(marker, b"{}")
    assert len(marker.name.encode()) == layout.NAME_LIMIT
    assert marker.read_bytes() == b"{}"


def test_long_names_that_share_a_start_get_different_files() -> None:
    a, b = LONGEST_KEY, LONGEST_KEY[:-1] + "e"
    assert layout.file_name(a, ".json") != layout.file_name(b, ".json")
    assert layout.file_name("ns/dep", ".json") == "ns_dep.json"  # short names as before
