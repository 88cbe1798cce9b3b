"""Reproducible OCI image archives: layer tars, config, manifest and an image-layout tar.

Same files in, same bytes out: names sorted, mtime fixed, numeric owners, no atime/ctime, gzip
without a name or time. Knows nothing of Debian or Python; images.py says what goes in.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EPOCH = 0
"""The mtime of every file in every layer and of the archive's own entries."""
GZIP_LEVEL = 6
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Tree:
    """A directory put into a layer under `prefix`; `owner` forces uid/gid (None keeps the disk's).

    `normalize_modes` makes every directory 0755 and every file 0644 or 0755 (pip output depends
    on the umask); the base rootfs keeps Debian's modes, minus setuid/setgid.
    """

    source: Path
    prefix: str
    owner: tuple[int, int] | None = (0, 0)
    normalize_modes: bool = True


@dataclass(frozen=True)
class Directory:
    """An empty directory created by a layer, e.g. a data directory owned by the image's user."""

    path: str
    mode: int
    owner: tuple[int, int]


@dataclass(frozen=True)
class Blob:
    """A content-addressed file under blobs/sha256/ of the layout being written."""

    digest: str
    size: int
    media_type: str

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Layer:
    blob: Blob
    diff_id: str
    unpacked_size: int
    created_by: str
    path: Path
    """Where the compressed blob is."""

    def to_json(self) -> dict[str, Any]:
        return {
            "blob": self.blob.descriptor(),
            "diff_id": self.diff_id,
            "unpacked_size": self.unpacked_size,
            "created_by": self.created_by,
            "path": str(self.path),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layer:
        descriptor = data["blob"]
        blob = Blob(descriptor["digest"], descriptor["size"], descriptor["mediaType"])
        return cls(
            blob, data["diff_id"], data["unpacked_size"], data["created_by"], Path(data["path"])
        )


@dataclass(frozen=True)
class ImageConfig:
    """What the runtime reads from the image config (the Dockerfile's USER/ENV/ENTRYPOINT...)."""

    user: str
    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    architecture: str = "amd64"


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Counting(io.RawIOBase):
    """A write-only sink that hashes and counts what passes through to `target`."""

    def __init__(self, target: io.BufferedIOBase | gzip.GzipFile) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.hash.update(chunk)
        self.size += len(chunk)
        self.target.write(chunk)
        return len(chunk)


def _walk(tree: Tree) -> Iterator[tuple[str, Path]]:
    """(archive name, disk path) of everything under the tree, the tree's root excluded."""
    for root, dirs, files in os.walk(tree.source):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(root, name)
            relative = path.relative_to(tree.source).as_posix()
            yield f"{tree.prefix.strip('/')}/{relative}".lstrip("/"), path


def _parents(name: str) -> Iterator[str]:
    parts = name.split("/")[:-1]
    for end in range(1, len(parts) + 1):
        yield "/".join(parts[:end])


def _normalized(info: tarfile.TarInfo, tree: Tree) -> tarfile.TarInfo:
    info.mtime = EPOCH
    info.uname = info.gname = ""
    info.mode &= ~(stat.S_ISUID | stat.S_ISGID)
    if tree.owner is not None:
        info.uid, info.gid = tree.owner
    if tree.normalize_modes and not info.issym():
        executable = info.isdir() or info.mode & 0o111
        info.mode = 0o755 if executable else 0o644
    return info


def _directory_info(name: str, mode: int, owner: tuple[int, int]) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode, (info.uid, info.gid), info.mtime = mode, owner, EPOCH
    return info


def _entries(
    trees: Iterable[Tree], directories: Iterable[Directory]
) -> list[tuple[str, tarfile.TarInfo | None, Path | None, Tree | None]]:
    """Every entry of a layer with its parents, sorted by name (a parent sorts before its child)."""
    found: dict[str, tuple[tarfile.TarInfo | None, Path | None, Tree | None]] = {}
    for tree in trees:
        for name, path in _walk(tree):
            found[name] = (None, path, tree)
    for directory in directories:
        name = directory.path.strip("/")
        found[name] = (_directory_info(name, directory.mode, directory.owner), None, None)
    for name in list(found):
        for parent in _parents(name):
            found.setdefault(parent, (_directory_info(parent, 0o755, (0, 0)), None, None))
    return [(name, *found[name]) for name in sorted(found)]


def _write_tar(sink: _Counting, trees: Iterable[Tree], directories: Iterable[Directory]) -> None:
    hardlinks: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, info, path, tree in _entries(trees, directories):
            if path is None or tree is None:
                assert info is not None
                tar.addfile(info)
                continue
            status = path.lstat()
            key = (status.st_dev, status.st_ino)
            info = _normalized(tar.gettarinfo(str(path), arcname=name), tree)
            if stat.S_ISREG(status.st_mode) and status.st_nlink > 1:
                if key in hardlinks:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, hardlinks[key], 0
                    tar.addfile(info)
                    continue
                hardlinks[key] = name
            if info.isreg():
                with path.open("rb") as content:
                    tar.addfile(info, content)
            else:
                tar.addfile(info)


def write_layer(
    blobs: Path,
    trees: Iterable[Tree],
    directories: Iterable[Directory] = (),
    created_by: str = "",
) -> Layer:
    """Tar + gzip the trees into blobs/<sha256>; returns the blob and the uncompressed diff_id."""
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / f".layer-{os.getpid()}.partial"
    with partial.open("wb") as raw:
        compressed = _Counting(raw)
        gz = gzip.GzipFile(
            filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=compressed, mtime=EPOCH
        )
        with gz:
            uncompressed = _Counting(gz)
            _write_tar(uncompressed, trees, directories)
    digest = "sha256:" + compressed.hash.hexdigest()
    path = blobs / digest.removeprefix("sha256:")
    partial.replace(path)
    blob = Blob(digest, compressed.size, LAYER_MEDIA_TYPE)
    return Layer(
        blob, "sha256:" + uncompressed.hash.hexdigest(), uncompressed.size, created_by, path
    )


def write_blob(blobs: Path, data: bytes, media_type: str) -> Blob:
    blobs.mkdir(parents=True, exist_ok=True)
    digest = sha256_digest(data)
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    return Blob(digest, len(data), media_type)


def config_document(config: ImageConfig, layers: list[Layer]) -> dict[str, Any]:
    """The OCI image config: runtime settings, diff_ids and one history entry per layer."""
    runtime: dict[str, Any] = {
        "User": config.user,
        "Env": list(config.env),
        "Entrypoint": list(config.entrypoint),
        "WorkingDir": "/",
        "Labels": dict(config.labels),
    }
    if config.cmd:
        runtime["Cmd"] = list(config.cmd)
    if config.exposed_ports:
        runtime["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.volumes:
        runtime["Volumes"] = {volume: {} for volume in config.volumes}
    return {
        "created": "1970-01-01T00:00:00Z",
        "architecture": config.architecture,
        "os": "linux",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": "1970-01-01T00:00:00Z", "created_by": layer.created_by} for layer in layers
        ],
    }


def write_manifest(blobs: Path, config: ImageConfig, layers: list[Layer]) -> tuple[Blob, Blob]:
    """(manifest, config) blobs written into `blobs`."""
    document = config_document(config, layers)
    config_blob = write_blob(blobs, canonical_json(document), CONFIG_MEDIA_TYPE)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_blob.descriptor(),
        "layers": [layer.blob.descriptor() for layer in layers],
    }
    return write_blob(blobs, canonical_json(manifest), MANIFEST_MEDIA_TYPE), config_blob


def index_document(manifest: Blob, ref: str, architecture: str) -> dict[str, Any]:
    """index.json naming the image as `ctr images import` and `skopeo` read it."""
    entry = manifest.descriptor() | {
        "platform": {"architecture": architecture, "os": "linux"},
        "annotations": {
            "io.containerd.image.name": ref,
            "org.opencontainers.image.ref.name": ref.rpartition(":")[2],
        },
    }
    return {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [entry]}


def write_archive(
    path: Path, files: dict[str, Path], manifest: Blob, ref: str, architecture: str
) -> int:
    """The OCI image layout as one uncompressed tar of the blobs in `files` (digest -> path)."""
    members: list[tuple[str, bytes | Path | None]] = [
        ("blobs", None),
        ("blobs/sha256", None),
        ("index.json", canonical_json(index_document(manifest, ref, architecture))),
        ("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"})),
    ]
    members += [(f"blobs/sha256/{d.removeprefix('sha256:')}", p) for d, p in files.items()]
    partial = path.with_name(path.name + ".partial")
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(members, key=lambda member: member[0]):
            _add_member(tar, name, content)
    partial.replace(path)
    return path.stat().st_size


def _add_member(tar: tarfile.TarFile, name: str, content: bytes | Path | None) -> None:
    if content is None:
        tar.addfile(_directory_info(name, 0o755, (0, 0)))
        return
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, EPOCH
    if isinstance(content, bytes):
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
        return
    info.size = content.stat().st_size
    with content.open("rb") as source:
        tar.addfile(info, source)


def read_image(archive: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(index.json, manifest, config) of a single-image archive written by write_archive."""
    with tarfile.open(archive) as tar:

        def document(name: str) -> dict[str, Any]:
            member = tar.extractfile(name)
            assert member is not None, f"{archive}: {name} is not a file"
            loaded: dict[str, Any] = json.load(member)
            return loaded

        index = document("index.json")
        manifest = document(_blob_name(index["manifests"][0]["digest"]))
        return index, manifest, document(_blob_name(manifest["config"]["digest"]))


def unpack_image(archive: Path, target: Path) -> None:
    """Apply the image's layers in order into `target` (as root: owners kept), like a runtime."""
    _, manifest, _ = read_image(archive)
    with tarfile.open(archive) as tar:
        for descriptor in manifest["layers"]:
            layer = tar.extractfile(_blob_name(descriptor["digest"]))
            assert layer is not None
            with tarfile.open(fileobj=layer, mode="r|gz") as entries:
                entries.extractall(target, numeric_owner=True, filter="fully_trusted")


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")
