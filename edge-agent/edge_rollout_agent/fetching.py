"""Getting chunk bytes onto the node: from seeds on disk, from staging, or from the store.

Seeds are the files the node already keeps (every version of every model); downloads go through
the verifying store reader with bounded concurrency, retries with backoff and a bandwidth cap,
into a staging directory that survives restarts. Must not assemble, test or activate models.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge_rollout.api import manifest as manifest_api
from edge_rollout.api.manifest import ChunkRef, GoldenVectors, Manifest
from edge_rollout.store import codec
from edge_rollout.store.errors import SHORT_READ, NotFoundError, StoreError, VerificationError
from edge_rollout_agent.layout import ModelDir, all_model_dirs


class ChunkSource(Protocol):
    """What the agent needs from the store; `edge_rollout.store.reader.StoreReader` is one."""

    def fetch_manifest(self, digest: str, held: Manifest | None = None) -> Manifest:
        """The manifest with this digest, verified against it (and its signature, given a key);
        taken from a manifest delta against `held` when the store has one."""
        ...

    def fetch_chunk(self, ref: ChunkRef, prefix: bytes = b"") -> bytes:
        """A chunk's plain bytes, verified against `ref.digest` and `ref.size`."""
        ...

    def fetch_golden(self, manifest: Manifest) -> GoldenVectors | None:
        """The manifest's golden vectors, verified, if it has any."""
        ...


@dataclass(frozen=True)
class SeedSpan:
    """Where a chunk's bytes sit in a file the node keeps."""

    path: Path
    offset: int
    size: int


def seed_index(data_dir: Path) -> dict[str, SeedSpan]:
    """Chunk digest → a place on disk holding it, over every installed model directory."""
    index: dict[str, SeedSpan] = {}
    for model_dir in all_model_dirs(data_dir):
        for manifest, item in model_dir.iter_installed():
            for entry in manifest.files:
                offset = 0
                for chunk in entry.chunks:
                    span = SeedSpan(model_dir.path(item) / entry.path, offset, chunk.size)
                    index.setdefault(chunk.digest, span)
                    offset += chunk.size
    return index


def read_span(span: SeedSpan) -> bytes:
    """The bytes of a seed span (empty when the file is gone or short)."""
    try:
        with open(span.path, "rb") as src:
            src.seek(span.offset)
            return src.read(span.size)
    except OSError:
        return b""


def read_verified(digest: str, span: SeedSpan | None, staged: Path | None) -> bytes | None:
    """A chunk's bytes from a seed or the staging directory, only if they hash to `digest`."""
    for data in (read_span(span) if span else b"", _read_file(staged) if staged else b""):
        if data and codec.sha256_hex(data) == digest:
            return data
    return None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


class RateLimiter:
    """A token bucket shared by download threads: at most `rate` bytes per second on average."""

    def __init__(
        self,
        rate: int | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.lock = threading.Lock()
        self.next_free = clock()

    def take(self, size: int) -> float:
        """Account for `size` bytes; sleep as needed; return the seconds slept."""
        if not self.rate:
            return 0.0
        with self.lock:
            now = self.clock()
            start = max(now, self.next_free)
            self.next_free = start + size / self.rate
            delay = start - now
        if delay > 0:
            self.sleep(delay)
        return delay


class FetchError(Exception):
    """A chunk could not be fetched after retries; `reason` is CamelCase for status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def classify(exc: StoreError) -> str:
    """The status reason for a store failure."""
    if isinstance(exc, NotFoundError):
        return "NotFound"
    if isinstance(exc, VerificationError):
        return "ChunkCorrupt"
    if exc.check == SHORT_READ:
        return "StoreShortRead"  # it answered, but kept cutting bodies short
    return "StoreUnreachable"


@dataclass
class Downloader:
    """Downloads missing chunks into `staging`, verified, with retries and a bandwidth cap."""

    source: ChunkSource
    staging: Path
    limiter: RateLimiter
    concurrency: int = 4
    attempts: int = 4
    backoff: float = 0.5
    on_chunk: Callable[[ChunkRef], None] = lambda ref: None
    between_chunks: Callable[[], None] = lambda: None
    """Called before each chunk is fetched; what it raises stops the download at that chunk
    boundary (what is staged stays for the next attempt). sync pauses a closed window so."""

    def staged(self, digest: str) -> Path:
        return self.staging / "chunks" / digest

    def fetch_all(self, refs: Iterable[ChunkRef]) -> None:
        """Stage every chunk in `refs`; raise FetchError for the first one that keeps failing."""
        (self.staging / "chunks").mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            for future in [pool.submit(self.fetch_one, ref) for ref in refs]:
                future.result()

    def fetch_one(self, ref: ChunkRef) -> None:
        """Fetch and stage one chunk, retrying failures with exponential backoff."""
        self.between_chunks()
        for attempt in range(self.attempts):
            try:
                data = self.source.fetch_chunk(ref)
            except StoreError as exc:
                if attempt + 1 == self.attempts:
                    raise FetchError(classify(exc), str(exc)) from exc
                time.sleep(self.backoff * 2**attempt)
                continue
            self.limiter.take(ref.stored)
            self._stage(ref.digest, data)
            self.on_chunk(ref)
            return

    def _stage(self, digest: str, data: bytes) -> None:
        target = self.staged(digest)
        tmp = target.with_name(f".{digest}.tmp-{threading.get_ident()}")
        tmp.write_bytes(data)  # no fsync: staged chunks are hashed again before use
        os.replace(tmp, target)


def staging_dir(model_dir: ModelDir, version: str, variant: str) -> Path:
    """Where chunks of one version/variant are staged until it is assembled."""
    return model_dir.staging / f"{version}-{variant}"


def golden_path(data_dir: Path, digest: str) -> Path:
    """Where the node keeps a golden blob (plain bytes), by digest, shared by all models."""
    return data_dir / "golden" / "sha256" / digest


def golden_vectors(source: ChunkSource, manifest: Manifest, data_dir: Path) -> GoldenVectors | None:
    """The manifest's golden vectors; each blob read from `<data>/golden` when the node holds it
    (checked against its digest), else fetched, verified and kept. Then drops the golden blobs
    that neither this manifest nor any installed version names."""
    if manifest.golden is None:
        return None
    blobs = {r.digest: _golden_blob(source, r, data_dir) for r in manifest.golden.blobs()}
    _prune_golden(data_dir, set(blobs))
    try:
        return manifest_api.load_golden(manifest.golden, blobs)
    except ValueError as exc:
        digest = manifest.golden.blobs()[0].digest
        problem = f"invalid golden vectors: {str(exc).splitlines()[0]}"
        path = codec.object_path("chunks", digest)
        fix = "Republish the release with a current edge-rollout"
        raise VerificationError(path, "schema", problem, fix) from exc


def _golden_blob(source: ChunkSource, ref: ChunkRef, data_dir: Path) -> bytes:
    path = golden_path(data_dir, ref.digest)
    held = _read_file(path)
    if held and codec.sha256_hex(held) == ref.digest:
        return held
    data = source.fetch_chunk(ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{ref.digest}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return data


def _prune_golden(data_dir: Path, keep: set[str]) -> None:
    """Remove golden blobs no installed version (nor `keep`) refers to."""
    folder = golden_path(data_dir, "x").parent
    if not folder.is_dir():
        return
    for model_dir in all_model_dirs(data_dir):
        for manifest, _ in model_dir.iter_installed():
            keep.update(r.digest for r in (manifest.golden.blobs() if manifest.golden else []))
    for path in folder.iterdir():
        if path.name not in keep:
            path.unlink(missing_ok=True)
