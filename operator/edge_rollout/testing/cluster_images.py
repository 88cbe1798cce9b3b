"""Images the cluster's nodes need without a registry: the pause image, built here and cached.

The pause binary is compiled from Kubernetes' own build/pause/linux/pause.c (Go module cache) with
`gcc -static` and packed by ocilayout.py as a one-layer OCI archive tagged exactly as containerd's
`sandbox_image`, so no node ever pulls. Archives are imported with `ctr images import`.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from edge_rollout.testing import ocilayout

K8S_VERSION = "v1.33.13"
PAUSE_VERSION = "3.10"
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE_VERSION}"


class ImageError(RuntimeError):
    """An image could not be built or imported."""


def cache_dir() -> Path:
    root = Path(os.environ.get("EDGE_ROLLOUT_CACHE", Path.home() / ".cache" / "edge-rollout"))
    return root / "images" / f"pause-{PAUSE_VERSION}-k8s-{K8S_VERSION}"


def pause_archive() -> Path:
    """The cached pause OCI archive; built on first use (a second)."""
    archive = cache_dir() / "pause.oci.tar"
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=archive.parent))  # concurrent builds write the same bytes
    (work / "rootfs").mkdir()
    _compile_pause(work / "rootfs" / "pause")
    architecture = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
    layer = ocilayout.write_layer(work / "blobs", [ocilayout.Tree(work / "rootfs", "/")])
    config = ocilayout.ImageConfig(
        user="65535:65535", env=(), entrypoint=("/pause",), architecture=architecture
    )
    manifest, config_blob = ocilayout.write_manifest(work / "blobs", config, [layer])
    blobs = {
        b.digest: work / "blobs" / b.digest.removeprefix("sha256:") for b in (manifest, config_blob)
    }
    ocilayout.write_archive(
        archive, {layer.blob.digest: layer.path, **blobs}, manifest, PAUSE_IMAGE, architecture
    )
    shutil.rmtree(work)
    return archive


def _pause_source() -> Path:
    modcache = subprocess.run(
        ["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True
    ).stdout.strip()
    source = Path(modcache) / f"k8s.io/kubernetes@{K8S_VERSION}/build/pause/linux/pause.c"
    if not source.exists():
        raise ImageError(
            f"{source} is missing: run hack/build-binaries.sh (it downloads k8s.io/kubernetes)"
        )
    return source


def _compile_pause(binary: Path) -> None:
    argv = ["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_VERSION}-edge-rollout"]
    result = subprocess.run(
        [*argv, "-o", str(binary), str(_pause_source())], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise ImageError(f"gcc -static pause.c failed (is gcc installed?):\n{result.stderr}")


def import_archive(ctr: list[str], archive: Path, timeout: float = 300.0) -> None:
    """`ctr images import` into one node's containerd (`ctr` holds --address and -n k8s.io)."""
    # Unpacked on first use by a Pod: a node that never runs the operator never unpacks it.
    argv = [*ctr, "images", "import", "--no-unpack", str(archive)]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ImageError(f"importing {archive} took over {timeout:.0f}s") from exc
    if result.returncode != 0:
        raise ImageError(f"importing {archive} failed: {result.stderr.strip()}")
