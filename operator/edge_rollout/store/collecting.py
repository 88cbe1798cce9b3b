"""Garbage collection of a directory store: objects no published release reaches any more.

A publish writes objects first and the index last, so one that fails half-way leaves objects (and
`.tmp-*` files or directories) that nothing references. Reachability starts at every
`models/<model>/<version>/index.json`; anything younger than a grace period is kept, because a
publish running now may be about to reference it. Reads indexes without verifying signatures (it
only decides what to keep) and refuses to delete anything when one cannot be read.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pydantic

from edge_rollout.api.manifest import Manifest
from edge_rollout.api.release import Release
from edge_rollout.store import codec
from edge_rollout.store.errors import StoreError

KINDS = ("chunks", "manifests", "manifest-deltas")


@dataclass
class Collection:
    """What a collection found (and removed, unless it was a dry run)."""

    garbage: list[Path] = field(default_factory=list)
    bytes: int = 0
    kept_young: int = 0
    """Unreferenced objects kept because they are younger than the grace period."""


def _read(path: Path) -> bytes:
    return codec.decompress(path.read_bytes())


def _unreadable(path: Path, exc: Exception) -> StoreError:
    return StoreError(
        str(path),
        "gc",
        f"cannot read it ({exc}), so what it references is unknown",
        "Fix or remove this release first (edge-rollout store verify); nothing was deleted",
    )


def reachable(root: Path) -> set[Path]:
    """Every object path a published release references, directly or through a manifest."""
    keep: set[Path] = set()
    for index in sorted(root.glob("models/*/*/index.json")):
        if index.parent.name.startswith("."):
            continue
        try:
            release = Release.model_validate_json(index.read_bytes())
        except (OSError, pydantic.ValidationError) as exc:
            raise _unreadable(index, exc) from exc
        for entry in release.variants:
            keep |= _manifest_objects(root, entry.manifest_digest.removeprefix("sha256:"))
    return keep


def _manifest_objects(root: Path, hex_digest: str) -> set[Path]:
    path = root / codec.object_path("manifests", hex_digest)
    found = {path, root / codec.signature_path(hex_digest)}
    if not path.exists():
        return found  # a broken release: verify reports it; nothing more to keep here
    try:
        manifest = Manifest.model_validate_json(_read(path))
    except Exception as exc:  # zstd or schema errors: keep everything rather than guess
        raise _unreadable(path, exc) from exc
    found |= {root / codec.object_path("chunks", ref.digest) for ref in manifest.blobs()}
    deltas = root / "manifest-deltas" / "sha256" / hex_digest
    found |= set(deltas.glob("*")) | {deltas}
    return found


def _candidates(root: Path) -> list[Path]:
    """Objects, signatures, deltas and leftover temporary files or directories."""
    found: list[Path] = []
    for kind in KINDS:
        base = root / kind / "sha256"
        if base.is_dir():
            found += [p for p in base.rglob("*") if p.is_file()]
            found += [p for p in base.iterdir() if p.is_dir()]
    found += [p for p in root.glob("models/*/.tmp-*")]
    found += [p for p in root.rglob(".tmp-*") if p.is_file()]
    return sorted(set(found))


def collect(root: Path, now: float, grace: float, dry_run: bool = False) -> Collection:
    """Remove unreferenced objects older than `grace` seconds (by mtime) under `root`."""
    keep = reachable(root)
    result = Collection()
    for path in _candidates(root):
        if path in keep or not path.exists():
            continue
        if now - path.stat().st_mtime < grace:
            result.kept_young += 1
            continue
        if path.is_dir() and any(p in keep for p in path.rglob("*")):
            continue
        result.garbage.append(path)
        result.bytes += _size(path)
        if not dry_run:
            _remove(path)
    return result


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
