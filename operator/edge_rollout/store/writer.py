"""Writes a directory store: content-addressed objects first, the signed index last, atomically.

A release becomes visible only when its version directory (index.json + index.json.sig) is renamed
into place, so a publish that fails half-way leaves only unreferenced objects behind (manifest
signatures and manifest deltas are written just before). Publishing a version again with other
content is refused. Must not verify what it did not write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pydantic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_rollout.api.manifest import ChunkRef, Manifest
from edge_rollout.api.release import Release
from edge_rollout.store import codec, keys
from edge_rollout.store.errors import StoreError
from edge_rollout.store.reader import check_identity, index_path


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reuse_or_write(path: Path, content: Callable[[], bytes]) -> None:
    """Write a content-addressed object, or refresh the mtime of the one there: `store gc`
    keeps young objects, so one a running publish reuses is not collected under it."""
    try:
        os.utime(path)
    except FileNotFoundError:
        _write_atomic(path, content())


def _add_signature(path: Path, key: Ed25519PrivateKey, data: bytes) -> bool:
    """Append a signature of `data` by `key` to the `.sig` file at `path` (atomically)."""
    try:
        held = path.read_bytes()
    except FileNotFoundError:
        held = b""
    added = keys.countersign(key, data, held)
    if added is None:
        return False
    _write_atomic(path, added)
    return True


def _release_identity(release: Release) -> list[tuple[str, str]]:
    return sorted((v.name, v.manifest_digest) for v in release.variants)


class DirectoryStore:
    """A store rooted at a local directory (serve it with nginx, sync it to S3)."""

    def __init__(self, root: Path, level: int = codec.ZSTD_LEVEL) -> None:
        self.root = root
        self.level = level

    def check_writable(self) -> None:
        """Refuse early (before any expensive work) when the store cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise StoreError(
                str(self.root),
                "writable",
                f"cannot write ({exc.strerror})",
                "Pass --store a directory you can write to",
            ) from exc

    def put_blob(self, data: bytes) -> ChunkRef:
        """Store a chunk, delta residual or golden blob; return its reference."""
        digest = codec.sha256_hex(data)
        path = self.root / codec.object_path("chunks", digest)
        _reuse_or_write(path, lambda: codec.compress(data, self.level))
        return ChunkRef(digest=digest, size=len(data), stored=path.stat().st_size)

    def stored_size(self, data: bytes) -> int:
        """What `put_blob(data)` would store, without storing it."""
        path = self.root / codec.object_path("chunks", codec.sha256_hex(data))
        return path.stat().st_size if path.exists() else len(codec.compress(data, self.level))

    def put_manifest(self, manifest: Manifest) -> tuple[str, int]:
        """Store a manifest; return `sha256:<hex>` of its plain JSON and its stored size."""
        data = codec.canonical_json(manifest)
        digest = codec.sha256_hex(data)
        path = self.root / codec.object_path("manifests", digest)
        _reuse_or_write(path, lambda: codec.compress(data, self.level))
        return f"sha256:{digest}", path.stat().st_size

    def manifest_bytes(self, digest: str) -> bytes:
        """The plain bytes of a manifest in this store (`sha256:<hex>` or hex)."""
        hex_digest = digest.removeprefix("sha256:")
        path = self.root / codec.object_path("manifests", hex_digest)
        try:
            return codec.decompress(path.read_bytes())
        except FileNotFoundError as exc:
            raise StoreError(
                str(path),
                "manifest",
                "the release names a manifest that is not in the store",
                "Store every manifest (put_manifest) before publishing the index",
            ) from exc

    def sign_manifest(self, digest: str, key: Ed25519PrivateKey) -> bool:
        """Add a signature by this key to `manifests/sha256/<hex>.sig`, keeping the signatures by
        other keys (releases of two keys may share a manifest); False when it has one already."""
        hex_digest = digest.removeprefix("sha256:")
        data = self.manifest_bytes(hex_digest)
        return _add_signature(self.root / codec.signature_path(hex_digest), key, data)

    def countersign_index(self, model: str, version: str, key: Ed25519PrivateKey) -> bool:
        """Add a signature by this key to a published release's `index.json.sig`, keeping the
        ones there (the caller verified the index with a key it trusts); False when it has one."""
        path = self.root / index_path(model, version)
        data = self._index_to_sign(path, model, version)
        return _add_signature(path.with_name("index.json.sig"), key, data)

    def sign_index(self, model: str, version: str, key: Ed25519PrivateKey) -> bool:
        """Write the missing `index.json.sig` of a release the user vouches for; False when a
        signature by this key is already there. Never replaces signatures that fail (a release
        signed by another key is countersigned with `countersign_index`)."""
        path = self.root / index_path(model, version)
        sig = path.with_name("index.json.sig")
        data = self._index_to_sign(path, model, version)
        if sig.exists():
            if keys.verify(key.public_key(), data, sig.read_bytes()):
                return False
            raise StoreError(
                str(sig),
                "signature",
                "index.json.sig is there but has no signature of index.json by this key",
                "Check --key; if the release is signed by another key you trust, countersign it:"
                f" `edge-rollout store sign STORE --key KEY --public-key SIGNER.pub --release"
                f" {model}@{version}`; else the index was altered: republish under a new version",
            )
        _write_atomic(sig, keys.sign(key, data))
        return True

    def _index_to_sign(self, path: Path, model: str, version: str) -> bytes:
        try:
            data = path.read_bytes()
            release = Release.model_validate_json(data)
        except (OSError, pydantic.ValidationError) as exc:
            raise StoreError(
                str(path),
                "index",
                f"no readable release index for {model}@{version} ({exc.__class__.__name__})",
                "Check MODEL@VERSION against `ls STORE/models/*/`; republish a broken index",
            ) from exc
        check_identity(release, model, version, str(path))
        return data

    def put_manifest_delta(self, digest: str, base: str) -> int | None:
        """Store manifest `digest` as a zstd frame against manifest `base` when that is smaller
        than the manifest itself (checked by decoding it once); its stored size, or None."""
        target, base_hex = digest.removeprefix("sha256:"), base.removeprefix("sha256:")
        path = self.root / codec.manifest_delta_path(target, base_hex)
        if path.exists():
            return path.stat().st_size
        plain, base_plain = self.manifest_bytes(target), self.manifest_bytes(base_hex)
        frame = codec.compress_against(plain, base_plain)
        full = (self.root / codec.object_path("manifests", target)).stat().st_size
        if frame is None or len(frame) >= full:
            return None
        if codec.decompress_against(frame, base_plain, len(plain)) != plain:
            return None
        _write_atomic(path, frame)
        return len(frame)

    def prepare_manifests(self, release: Release, key: Ed25519PrivateKey) -> None:
        """Sign every manifest of the release; add manifest deltas against the previous one."""
        previous = (
            self.published(release.model, release.previous_version)
            if release.previous_version
            else None
        )
        for entry in release.variants:
            self.sign_manifest(entry.manifest_digest, key)
            held = previous.variant(entry.name) if previous is not None else None
            if held is not None and held.manifest_digest != entry.manifest_digest:
                with contextlib.suppress(StoreError):  # a damaged old release: no delta
                    self.put_manifest_delta(entry.manifest_digest, held.manifest_digest)

    def published(self, model: str, version: str) -> Release | None:
        """The index already published for this version, unverified (for conflict checks)."""
        path = self.root / index_path(model, version)
        return Release.model_validate_json(path.read_bytes()) if path.exists() else None

    def versions(self, model: str) -> list[Release]:
        """Every published release of a model, oldest first (by `created`)."""
        base = self.root / "models" / model
        found = [self.published(model, d.name) for d in base.iterdir()] if base.is_dir() else []
        return sorted((r for r in found if r is not None), key=lambda r: (r.created, r.version))

    def publish(self, release: Release, key: Ed25519PrivateKey) -> bool:
        """Sign and make the release visible; False if the same content was already published."""
        existing = self.published(release.model, release.version)
        if existing is not None:
            if _release_identity(existing) == _release_identity(release):
                return False
            raise StoreError(
                str(self.root / index_path(release.model, release.version)),
                "immutable",
                "this version is already published with other content",
                "Publish under a new version; published versions never change",
            )
        self.prepare_manifests(release, key)
        data = codec.canonical_json(release)
        final = (self.root / index_path(release.model, release.version)).parent
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        _write_atomic(tmp / "index.json.sig", keys.sign(key, data))
        _write_atomic(tmp / "index.json", data)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            for child in tmp.iterdir():
                child.unlink()
            tmp.rmdir()
            raise StoreError(
                str(final),
                "immutable",
                f"cannot move the release into place ({exc.strerror})",
                "Another publish of this version ran at the same time; check and retry",
            ) from exc
        return True
