"""Images the cluster's nodes need without a registry: the pause image, built here and cached.

The pause binary is compiled from Kubernetes' own build/pause/linux/pause.c (in the Go module cache)
with `gcc -static` and packed as a one-layer OCI archive tagged exactly as containerd's
`sandbox_image`, so no node ever pulls. Archives are imported with `ctr images import`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import subprocess
import tarfile
from pathlib import Path

K8S_VERSION = "v1.33.13"
PAUSE_VERSION = "3.10"
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE_VERSION}"
EPOCH = 0


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
    binary = archive.parent / "pause"
    _compile_pause(binary)
    config: dict[str, object] = {"Entrypoint": ["/pause"], "User": "65535:65535"}
    partial = archive.with_suffix(".partial")
    write_oci_archive(partial, PAUSE_IMAGE, {"pause": binary.read_bytes()}, config)
    partial.rename(archive)
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


def write_oci_archive(
    path: Path, ref: str, files: dict[str, bytes], config: dict[str, object]
) -> None:
    """A reproducible OCI image archive of one layer holding `files` (mode 0755, uid 0)."""
    layer = _gzip(_layer_tar(files))
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    image_config = _json(
        {
            "architecture": {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()],
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    )
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", image_config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)],
        }
    )
    manifest_descriptor = _descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
    manifest_descriptor["annotations"] = {
        "io.containerd.image.name": ref,
        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
    }
    index = _json({"schemaVersion": 2, "manifests": [manifest_descriptor]})
    entries = {
        "oci-layout": _json({"imageLayoutVersion": "1.0.0"}),
        "index.json": index,
        **{_blob_name(b): b for b in (layer, image_config, manifest)},
    }
    path.write_bytes(_tar(entries, mode=0o644))


def _layer_tar(files: dict[str, bytes]) -> bytes:
    return _tar(files, mode=0o755)


def _tar(entries: dict[str, bytes], mode: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(entries[name]), mode, EPOCH
            tar.addfile(info, io.BytesIO(entries[name]))
    return buffer.getvalue()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=EPOCH)


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _descriptor(media_type: str, blob: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": _digest(blob), "size": len(blob)}


def _blob_name(blob: bytes) -> str:
    return "blobs/sha256/" + hashlib.sha256(blob).hexdigest()


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
