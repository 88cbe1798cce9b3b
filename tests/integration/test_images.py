"""`make images` without a container engine: reproducible archives that run what the chart runs.

Builds twice from one snapshot of the sources (the second time writing every layer again) and
compares digests; then unpacks each image and runs its entry point in a chroot as uid 65532, with
the image's own environment, and the chart's arguments checked against its `--help`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_rollout.testing import images, ocilayout
from tests.support import REPO

pytestmark = pytest.mark.timeout(1800)
SNAPSHOT = ("pyproject.toml", "README.md", "operator", "edge-agent", "charts")
TEMPLATES = REPO / "charts" / "edge-rollout" / "templates"


@dataclass(frozen=True)
class Built:
    first: dict[str, images.ImageArchive]
    second: dict[str, images.ImageArchive]
    rootfs: dict[str, Path]
    configs: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Both images built twice from one snapshot of the sources, and unpacked once (about
    1.5 GB of files, removed afterwards)."""
    assert os.geteuid() == 0, "building images needs root (debootstrap, chroot)"
    snapshot = tmp_path_factory.mktemp("source")
    for name in SNAPSHOT:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(REPO / name, snapshot / name)
    first = images.build_images(tmp_path_factory.mktemp("first"), repo=snapshot)
    second = images.build_images(
        tmp_path_factory.mktemp("second"), repo=snapshot, reuse_layers=False
    )
    rootfs, configs = {}, {}
    for name, archive in first.items():
        rootfs[name] = tmp_path_factory.mktemp(f"rootfs-{name}")
        rootfs[name].chmod(0o755)  # the image's `/`, which uid 65532 must traverse
        ocilayout.unpack_image(archive.path, rootfs[name])
        configs[name] = ocilayout.read_image(archive.path)[2]
    yield Built(first, second, rootfs, configs)
    outputs = {archive.path.parent for archive in [*first.values(), *second.values()]}
    for tree in [*outputs, *rootfs.values(), snapshot]:
        shutil.rmtree(tree)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def layer_names(archive: Path) -> list[set[str]]:
    _, manifest, _ = ocilayout.read_image(archive)
    names = []
    with tarfile.open(archive) as outer:
        for layer in manifest["layers"]:
            blob = outer.extractfile("blobs/sha256/" + layer["digest"].removeprefix("sha256:"))
            assert blob is not None
            with tarfile.open(fileobj=blob, mode="r|gz") as tar:
                names.append({member.name for member in tar})
    return names


def run_in(rootfs: Path, config: dict[str, Any], *command: str, user: str | None = None) -> str:
    """`command` in a chroot of the image, as its USER, with its Env only."""
    env = dict(item.split("=", 1) for item in config["config"]["Env"])
    userspec = user or config["config"]["User"]
    done = subprocess.run(
        ["chroot", f"--userspec={userspec}", str(rootfs), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd="/",
    )
    assert done.returncode == 0, f"{' '.join(command)} in the image failed:\n{done.stderr}"
    return done.stdout + done.stderr


def chart_arguments(template: str) -> list[str]:
    """The flags a chart template passes (`- --flag=...`), to check them against `--help`."""
    text = (TEMPLATES / template).read_text()
    return sorted(set(re.findall(r"^\s*- (--[a-z][a-z-]*)", text, flags=re.MULTILINE)))


def test_two_builds_from_the_same_sources_give_the_same_bytes(built: Built) -> None:
    for name, archive in built.first.items():
        again = built.second[name]
        assert archive.digest == again.digest, f"{name}: {archive.digest} != {again.digest}"
        assert sha256(archive.path) == sha256(again.path), f"{name}: the archives differ"
        assert archive.path.name == f"{name}.oci.tar"


def test_the_refs_are_the_charts_defaults(built: Built) -> None:
    for name, archive in built.first.items():
        index, _, _ = ocilayout.read_image(archive.path)
        annotations = index["manifests"][0]["annotations"]
        assert annotations["io.containerd.image.name"] == archive.ref
        assert archive.ref == f"ghcr.io/edge-rollout/{name}:0.1.0"
        assert annotations["org.opencontainers.image.ref.name"] == "0.1.0"
        assert index["manifests"][0]["digest"] == archive.digest


def test_both_images_run_as_65532_with_their_console_script(built: Built) -> None:
    operator, agent = built.configs["operator"]["config"], built.configs["agent"]["config"]
    assert operator["User"] == agent["User"] == "65532:65532"
    assert operator["Entrypoint"] == ["edge-rollout"]
    assert operator["Cmd"] == ["operator", "--liveness=http://0.0.0.0:8080/healthz"]
    assert agent["Entrypoint"] == ["edge-rollout-agent"]
    assert "PYTHONDONTWRITEBYTECODE=1" in operator["Env"]
    data_dir = built.rootfs["agent"] / "var/lib/edge-rollout"
    assert (data_dir.stat().st_uid, data_dir.stat().st_gid) == (65532, 65532)


def test_only_the_agent_image_carries_onnxruntime(built: Built) -> None:
    def has_onnxruntime(name: str) -> bool:
        layers = layer_names(built.first[name].path)
        return any("/dist-packages/onnxruntime/" in entry for names in layers for entry in names)

    assert not has_onnxruntime("operator")
    assert has_onnxruntime("agent")


def test_the_operator_starts_with_the_charts_arguments(built: Built) -> None:
    rootfs, config = built.rootfs["operator"], built.configs["operator"]
    run_in(rootfs, config, "/usr/bin/python3", "-c", "import edge_rollout.cli.main")
    help_text = run_in(rootfs, config, *config["config"]["Entrypoint"], "operator", "--help")
    for flag in chart_arguments("operator-deployment.yaml"):
        assert flag in help_text, f"the chart passes {flag}; `edge-rollout operator` lacks it"


def test_the_agent_and_its_init_container_start_with_the_charts_arguments(built: Built) -> None:
    rootfs, config = built.rootfs["agent"], built.configs["agent"]
    run_in(rootfs, config, "/usr/bin/python3", "-c", "import edge_rollout_agent.__main__")
    help_text = run_in(rootfs, config, *config["config"]["Entrypoint"], "--help")
    for flag in chart_arguments("agent-daemonset.yaml"):
        assert flag in help_text, f"the chart passes {flag}; edge-rollout-agent lacks it"
    run_in(rootfs, config, "chown", "65532:65532", "/var/lib/edge-rollout", user="0:0")


def test_byte_code_is_compiled_for_the_images_python_and_never_checked(built: Built) -> None:
    rootfs, config = built.rootfs["agent"], built.configs["agent"]
    magic = run_in(
        rootfs,
        config,
        "/usr/bin/python3",
        "-c",
        "import importlib.util as u; print(u.MAGIC_NUMBER.hex())",
    ).strip()
    compiled = sorted(rootfs.glob("usr/local/lib/python3.11/dist-packages/**/*.pyc"))
    assert len(compiled) > 100
    for path in compiled[:: max(1, len(compiled) // 200)]:
        header = path.read_bytes()[:8]
        assert header[:4].hex() == magic, f"{path}: compiled for another Python"
        assert int.from_bytes(header[4:8], "little") == 1, f"{path}: not an unchecked-hash .pyc"
