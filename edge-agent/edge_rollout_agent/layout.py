"""The agent's files on disk: model directories, `current`/`previous` links, staging, state.

`<data>/models/<ns>/<deployment>/<version>-<variant>/model.onnx` plus `manifest.json`; the
`current` and `previous` symlinks are switched with os.replace, so apps always see a whole model.
Every write is tmp file, fsync, rename. Must not decide what to install (see policy) and must
never point `current` at a file whose sha256 does not match its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_rollout.api.manifest import Manifest
from edge_rollout_agent.policy import Installed
from edge_rollout_agent.verification import Stamp

MANIFEST_FILE = "manifest.json"
READ_BLOCK = 1 << 20


class IntegrityError(Exception):
    """A file on disk does not match the digest its manifest gives."""


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def point_link(link: Path, target: str) -> None:
    """Point the symlink `link` at `target` (relative) atomically."""
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        for block in iter(lambda: src.read(READ_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_files(directory: Path, manifest: Manifest) -> None:
    """Raise IntegrityError unless every file of the manifest is in `directory` and matches."""
    for entry in manifest.files:
        path = directory / entry.path
        if not path.is_file() or path.stat().st_size != entry.size:
            raise IntegrityError(f"{path}: missing or not {entry.size} bytes")
        actual = sha256_file(path)
        if actual != entry.digest:
            raise IntegrityError(f"{path}: sha256 {actual}, manifest says {entry.digest}")


def stamp(path: Path) -> Stamp | None:
    """Size, mtime and inode of a file (None when it is gone)."""
    try:
        found = path.stat()
    except OSError:
        return None
    return Stamp(found.st_size, found.st_mtime_ns, found.st_ino)


def stamps(directory: Path, manifest: Manifest) -> dict[str, Stamp | None]:
    """The stamp of every file of `manifest` in `directory`, by manifest path."""
    return {entry.path: stamp(directory / entry.path) for entry in manifest.files}


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (0 when it is gone)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


NAME_LIMIT = 200
"""Most bytes in a file name the agent derives from an object name (file systems allow 255;
`write_atomic` adds a dot, `.tmp-` and a pid)."""


def file_name(key: str, suffix: str = "") -> str:
    """A file name for `key` (`<namespace>/<deployment>`, up to 63 + 1 + 253 characters) of at
    most NAME_LIMIT bytes: `/` becomes `_`, and a name that would be longer keeps its start and
    ends in a hash of the whole key, so two keys never share a file.

    >>> file_name("fleet/classifier", ".json")
    'fleet_classifier.json'
    >>> len(file_name("n" * 63 + "/" + "d" * 253, ".json"))
    200
    """
    flat = key.replace("/", "_")
    if len((flat + suffix).encode()) <= NAME_LIMIT:
        return flat + suffix
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    keep = NAME_LIMIT - len(suffix.encode()) - len(digest) - 1
    start = flat.encode()[:keep].decode(errors="ignore")
    return f"{start}-{digest}{suffix}"


def state_file(data_dir: Path, kind: str, key: str) -> Path:
    """`<data>/state/<kind>/<file_name(key)>.json`: the agent's own record about one entry."""
    return data_dir / "state" / kind / file_name(key, ".json")


def dir_name(item: Installed) -> str:
    """`<version>-<variant>` (the manifest inside, not the name, says which it is)."""
    return f"{item.version}-{item.variant}"


@dataclass(frozen=True)
class ModelDir:
    """The directories of one desired model, `<data>/models/<namespace>/<deployment>`."""

    data_dir: Path
    name: str
    """`<namespace>/<deployment>`."""

    @property
    def base(self) -> Path:
        namespace, deployment = self.name.split("/", 1)
        return self.data_dir / "models" / namespace / deployment

    @property
    def staging(self) -> Path:
        namespace, deployment = self.name.split("/", 1)
        return self.data_dir / "staging" / namespace / deployment

    def path(self, item: Installed) -> Path:
        """The directory holding one version/variant."""
        return self.base / dir_name(item)

    def model_file(self, item: Installed) -> Path:
        """The ONNX file of one version/variant (the manifest's main file)."""
        manifest = self.manifest(item)
        return self.path(item) / (manifest.main_file.path if manifest else "model.onnx")

    def manifest(self, item: Installed) -> Manifest | None:
        """The manifest kept beside an installed version, if it is complete."""
        return read_manifest(self.path(item) / MANIFEST_FILE)

    def installed(self) -> frozenset[Installed]:
        """Every complete version directory (assembled, verified and renamed into place)."""
        return frozenset(item for _, item in self.iter_installed())

    def iter_installed(self) -> Iterator[tuple[Manifest, Installed]]:
        """(manifest, version) of each complete directory, in name order."""
        if not self.base.is_dir():
            return
        for child in sorted(self.base.iterdir()):
            if child.name.startswith(".") or child.is_symlink() or not child.is_dir():
                continue
            manifest = read_manifest(child / MANIFEST_FILE)
            if manifest is not None and child.name == dir_name(_item(manifest)):
                yield manifest, _item(manifest)

    def link(self, which: str) -> Installed | None:
        """What `current` or `previous` points at, if it points at a complete version."""
        link = self.base / which
        if not link.is_symlink():
            return None
        manifest = read_manifest(link / MANIFEST_FILE)
        return _item(manifest) if manifest else None

    def activate(self, item: Installed) -> None:
        """Verify the files of `item` and make it `current` (the old current becomes
        `previous`). Raises IntegrityError, leaving the links untouched, when a digest fails."""
        manifest = self.manifest(item)
        if manifest is None:
            raise IntegrityError(f"{self.path(item)}: not a complete model directory")
        verify_files(self.path(item), manifest)
        current = self.link("current")
        if current is not None and current != item:
            point_link(self.base / "previous", dir_name(current))
        point_link(self.base / "current", dir_name(item))

    def remove(self, item: Installed) -> None:
        """Delete one version directory (never the one `current` points at)."""
        if self.link("current") == item:
            raise ValueError(f"{self.path(item)} is current; activate another version first")
        trash = self.base / f".trash-{dir_name(item)}-{os.getpid()}"
        if self.path(item).is_dir():
            os.replace(self.path(item), trash)  # atomic: it is no longer "installed"
            shutil.rmtree(trash, ignore_errors=True)

    def install(self, assembled: Path, manifest: Manifest) -> Installed:
        """Move a verified, fsynced directory into place in one rename."""
        item = _item(manifest)
        write_atomic(assembled / MANIFEST_FILE, manifest.model_dump_json(by_alias=True).encode())
        target = self.path(item)
        trash = self.base / f".trash-{dir_name(item)}-{os.getpid()}"
        if target.exists():  # a repair of the served version: swap in the verified copy
            os.replace(target, trash)
        os.replace(assembled, target)
        fsync_dir(self.base)
        shutil.rmtree(trash, ignore_errors=True)
        return item

    def leftovers(self, keep: Path) -> list[Path]:
        """The agent's own partial work: `.tmp-*` and `.trash-*` directories and staging of
        other versions (`keep`, the staging of the version being installed, resumes)."""
        found = []
        if self.base.is_dir():
            found += [p for p in self.base.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
        if self.staging.is_dir():
            found += [p for p in self.staging.iterdir() if p != keep]
        return sorted(found)


def _item(manifest: Manifest) -> Installed:
    return Installed(manifest.version, manifest.variant)


def read_manifest(path: Path) -> Manifest | None:
    """A manifest file kept on disk, or None when missing or unreadable."""
    try:
        return Manifest.model_validate(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return None


def all_model_dirs(data_dir: Path) -> list[ModelDir]:
    """Every `<ns>/<deployment>` that has a directory under `<data>/models`."""
    root = data_dir / "models"
    if not root.is_dir():
        return []
    return [
        ModelDir(data_dir, f"{ns.name}/{dep.name}")
        for ns in sorted(root.iterdir())
        if ns.is_dir()
        for dep in sorted(ns.iterdir())
        if dep.is_dir()
    ]


def deployments_on_disk(data_dir: Path) -> set[str]:
    """`<namespace>/<deployment>` of every model directory under `<data>/models`."""
    models = data_dir / "models"
    if not models.is_dir():
        return set()
    return {
        f"{ns.name}/{dep.name}"
        for ns in models.iterdir() if ns.is_dir()
        for dep in ns.iterdir() if dep.is_dir() and not dep.name.startswith(".")
    }  # fmt: skip


def remove_deployment(data_dir: Path, name: str) -> None:
    """Delete every file of a model the operator no longer wants here (and its staging)."""
    model_dir = ModelDir(data_dir, name)
    for path in (model_dir.base, model_dir.staging):
        shutil.rmtree(path, ignore_errors=True)
