"""One install, end to end: manifest, fit check, seeds and deltas, downloads, assembly, smoke test.

Fetches the manifest as a delta against the held one where the store has it, follows the plan of
`content.diffing` vs the version the node holds (tensor and gap deltas), takes every other chunk
it can from files kept on disk, stages downloads so a restart resumes, assembles into a temporary
directory (every chunk and file hashed, fsynced), smoke-tests it there, and only then renames it
into place and activates it. Must not talk to the cluster; reports through a callback only.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.manifest import ChunkRef, FileEntry, Manifest, Tolerance
from edge_rollout.content import diffing
from edge_rollout.store.errors import StoreError, VerificationError
from edge_rollout_agent import fetching, layout, policy, rebuilding, runtime
from edge_rollout_agent.fetching import ChunkSource, Downloader, FetchError, RateLimiter
from edge_rollout_agent.layout import IntegrityError, ModelDir
from edge_rollout_agent.policy import Installed, Transfer

STAGING_OVERHEAD = 2
"""Disk needed while installing: staged chunks plus the assembled copy."""


class SyncError(Exception):
    """An install failed; `reason` is the CamelCase status reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PausedError(Exception):
    """An install stopped because `action` (a Wait: its update window closed) says so; what is
    staged is reused when it goes on."""

    def __init__(self, action: policy.Action) -> None:
        super().__init__(action.message)
        self.action = action


@dataclass
class Progress:
    """What an install has done so far (reported as status while it runs)."""

    phase: str = "Pending"
    bytes_fetched: int = 0
    bytes_reused: int = 0
    total_bytes: int = 0
    done_bytes: int = 0

    @property
    def percent(self) -> int:
        return min(100, self.done_bytes * 100 // self.total_bytes) if self.total_bytes else 0


@dataclass
class Environment:
    """What an install may use on this node."""

    data_dir: Path
    source: ChunkSource
    providers: list[str]
    disk_free: int
    memory_available: int
    bandwidth: int | None = None
    concurrency: int = 4
    retry_backoff: float = 0.5
    report: Callable[[Progress], None] = lambda progress: None
    pause: Callable[[], policy.Action | None] = lambda: None
    """Asked between chunks and right before `current` switches: a Wait stops the install
    there (the agent passes policy.pause_install with its clock)."""
    progress: Progress = field(default_factory=Progress)

    def set_phase(self, phase: str) -> None:
        self.progress.phase = phase
        self.report(self.progress)


@dataclass(frozen=True)
class Result:
    """A finished install."""

    installed: Installed
    check: runtime.Check
    bytes_fetched: int
    bytes_reused: int


def fetch_manifest(
    source: ChunkSource, desired: DesiredModel, held: Manifest | None = None
) -> Manifest:
    """The verified manifest of the desired variant; refuses one for another model or version.

    With `held`, the store's manifest delta against it is used when there is one."""
    if not desired.manifest_digest:
        raise SyncError("ManifestInvalid", "the spec entry has no manifestDigest")
    try:
        manifest = source.fetch_manifest(desired.manifest_digest, held)
    except VerificationError as exc:
        raise SyncError("ManifestInvalid", str(exc)) from exc
    except StoreError as exc:
        raise SyncError(fetching.classify(exc), str(exc)) from exc
    found = (manifest.model, manifest.version, manifest.variant)
    if found != (desired.model, desired.version, desired.variant):
        raise SyncError("ManifestInvalid", f"manifest is for {found}, spec wants "
                        f"{(desired.model, desired.version, desired.variant)}")  # fmt: skip
    return manifest


def held_manifest(model_dir: ModelDir) -> Manifest | None:
    """The manifest deltas are computed against: the current version, else the previous."""
    for which in ("current", "previous"):
        item = model_dir.link(which)
        manifest = model_dir.manifest(item) if item else None
        if manifest is not None:
            return manifest
    return None


def check_fits(
    manifest: Manifest, env: Environment, disk: policy.DiskSpace, memory_needed: int = 0
) -> None:
    """Refuse before downloading anything when disk or memory cannot hold the model.

    Memory is the larger of the file size and what the release measured (`memory_needed`, from
    the operator's entry); disk counts what deleting versions no rollback needs would free."""
    size = sum(f.size for f in manifest.files)
    problem = policy.judge_fit(size * STAGING_OVERHEAD, max(size, memory_needed), disk,
                               env.memory_available)  # fmt: skip
    if problem:
        reason, message = problem
        raise SyncError(reason, f"{manifest.model} {manifest.version}/{manifest.variant}: "
                        f"{message}")  # fmt: skip


def make_room(
    model_dir: ModelDir, desired: DesiredModel, staging: Path, needed: int, reported_free: int
) -> policy.DiskSpace:
    """Remove the agent's own leftovers, then measure the disk (free space is at most what the
    node reported plus what the leftovers held); delete kept versions no rollback needs when the
    install would not fit otherwise."""
    cleaned = 0
    for path in model_dir.leftovers(keep=staging):
        cleaned += layout.tree_bytes(path)
        shutil.rmtree(path, ignore_errors=True)
    target = Installed(desired.version, desired.variant)
    spare = policy.reclaimable(model_dir.installed(), model_dir.link("current"),
                               desired.keep_version, target)  # fmt: skip
    spare_bytes = sum(layout.tree_bytes(model_dir.path(item)) for item in spare)
    disk = measure_disk(model_dir.data_dir, spare_bytes, reported_free + cleaned)
    if needed > disk.free and needed <= disk.free + disk.reclaimable:
        for item in spare:
            model_dir.remove(item)
        disk = measure_disk(model_dir.data_dir, 0, reported_free + cleaned + spare_bytes)
    return disk


def measure_disk(data_dir: Path, reclaimable: int, cap: int | None = None) -> policy.DiskSpace:
    """The file system of `data_dir` (or of its nearest existing parent) now; free space at most
    `cap` (what the node's hardware report says)."""
    where = data_dir
    while not where.exists() and where != where.parent:
        where = where.parent
    usage = shutil.disk_usage(where)
    free = usage.free if cap is None else min(usage.free, cap)
    return policy.DiskSpace(str(data_dir), usage.total, free, reclaimable)


def disk_full(exc: OSError, data_dir: Path, needed: int) -> SyncError:
    """ENOSPC as its own transient reason, with the numbers."""
    free = measure_disk(data_dir, 0).free
    where = exc.filename or data_dir
    return SyncError("DiskFull", f"needed {needed} bytes, free {free} on {where} ({exc.strerror});"
                     " free space there, the agent retries on its own")  # fmt: skip


def plan(held: Manifest | None, wanted: Manifest, transfer: Transfer, use_deltas: bool) -> (
    diffing.ManifestDiff
):  # fmt: skip
    """The diff to follow; DeltaOnly refuses a plan with nothing held to apply it to."""
    if transfer == "DeltaOnly" and held is None:
        raise SyncError("DeltaRequired", "only deltas are allowed and nothing is held")
    return diffing.diff_manifests(held, wanted, deltas=use_deltas)


def install(
    desired: DesiredModel, env: Environment, transfer: Transfer = "Full", runs: int = 10
) -> Result:
    """Install and activate the desired version; raises SyncError with the reason on failure
    (`DiskFull` with the numbers when the disk runs out on the way)."""
    needed = [0]
    try:
        return _install(desired, env, transfer, runs, needed)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise disk_full(exc, env.data_dir, needed[0]) from exc


def _install(
    desired: DesiredModel, env: Environment, transfer: Transfer, runs: int, needed: list[int]
) -> Result:
    model_dir = ModelDir(env.data_dir, desired.name)
    use_deltas = desired.delivery.delta != "Off"
    held = _delta_base(held_manifest(model_dir), desired)
    manifest = fetch_manifest(env.source, desired, held if use_deltas else None)
    staging = fetching.staging_dir(model_dir, desired.version, desired.variant)
    needed[0] = sum(f.size for f in manifest.files) * STAGING_OVERHEAD
    disk = make_room(model_dir, desired, staging, needed[0], env.disk_free)
    check_fits(manifest, env, disk, memory_needed=desired.memory_bytes)
    diff = plan(held, manifest, transfer, use_deltas)
    seeds = fetching.seed_index(env.data_dir)
    env.progress.total_bytes = diff.total_bytes
    downloader = _downloader(staging, env)
    _download(diff, manifest, seeds, downloader, env)
    unbuilt = _rebuild(diff, manifest, held, model_dir, staging)
    _fetch(downloader, unbuilt)
    assembled = _assemble(manifest, seeds, staging, model_dir, env)
    check = _smoke_test(desired, manifest, assembled, env, runs)
    _check_pause(env, assembled)
    item = model_dir.install(assembled, manifest)
    _activate(model_dir, item)
    shutil.rmtree(staging, ignore_errors=True)
    return Result(item, check, env.progress.bytes_fetched, env.progress.bytes_reused)


def _check_pause(env: Environment, assembled: Path | None = None) -> None:
    """Raise PausedError when the install must stop now. Right before activation the assembled
    copy goes and the staged chunks stay: the next attempt assembles and tests from them, with
    no download, once the window is open (`current` never switches outside it)."""
    action = env.pause()
    if action is None:
        return
    if assembled is not None:
        shutil.rmtree(assembled, ignore_errors=True)
    raise PausedError(action)


def _delta_base(held: Manifest | None, desired: DesiredModel) -> Manifest | None:
    """No delta against the version being repaired: its own files are what is damaged (its
    intact chunks are still reused as seeds)."""
    if held is not None and (held.version, held.variant) == (desired.version, desired.variant):
        return None
    return held


def _downloader(staging: Path, env: Environment) -> Downloader:
    def on_chunk(ref: ChunkRef) -> None:
        env.progress.bytes_fetched += ref.stored
        env.progress.done_bytes += ref.size
        env.report(env.progress)

    limiter = RateLimiter(env.bandwidth)
    return Downloader(env.source, staging, limiter, env.concurrency, backoff=env.retry_backoff,
                      on_chunk=on_chunk, between_chunks=lambda: _check_pause(env))  # fmt: skip


def _download(
    diff: diffing.ManifestDiff,
    manifest: Manifest,
    seeds: dict[str, fetching.SeedSpan],
    downloader: Downloader,
    env: Environment,
) -> None:
    """Fetch the plan's chunks and delta residuals that are not on the node yet."""
    env.set_phase("Downloading")
    wanted = [*diff.fetch, *(u.delta.blob for u in diff.deltas),
              *(g.delta.blob for g in diff.gap_deltas)]  # fmt: skip
    missing = [r for r in wanted if not _have(r.digest, seeds, downloader)]
    missing_digests = {r.digest for r in missing}
    for chunk in (c for entry in manifest.files for c in entry.chunks):
        if chunk.digest not in missing_digests:
            env.progress.bytes_reused += chunk.size
            env.progress.done_bytes += chunk.size
    _fetch(downloader, missing)


def _fetch(downloader: Downloader, refs: list[ChunkRef]) -> None:
    try:
        downloader.fetch_all(refs)
    except FetchError as exc:
        raise SyncError(exc.reason, str(exc)) from exc


def _have(digest: str, seeds: dict[str, fetching.SeedSpan], downloader: Downloader) -> bool:
    """A chunk already on the node (a verified seed or a staged download from before)."""
    staged = downloader.staged(digest)
    return fetching.read_verified(digest, seeds.get(digest), staged) is not None


def _rebuild(
    diff: diffing.ManifestDiff,
    manifest: Manifest,
    held: Manifest | None,
    model_dir: ModelDir,
    staging: Path,
) -> list[ChunkRef]:
    """Stage what tensor and gap deltas rebuild; return the chunks still to fetch."""
    try:
        unbuilt = rebuilding.rebuild_tensors(diff, manifest, held, model_dir, staging)
    except rebuilding.DeltaMismatchError as exc:
        raise SyncError("DeltaMismatch", str(exc)) from exc
    return unbuilt + rebuilding.rebuild_gaps(diff, manifest, held, model_dir, staging)


def _assemble(
    manifest: Manifest,
    seeds: dict[str, fetching.SeedSpan],
    staging: Path,
    model_dir: ModelDir,
    env: Environment,
) -> Path:
    """Write every file into a temporary directory, hashing each chunk and the whole file."""
    env.set_phase("Verifying")
    target = model_dir.base / f".tmp-{manifest.version}-{manifest.variant}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for entry in manifest.files:
        _assemble_file(entry, seeds, staging, target / entry.path)
    layout.fsync_dir(target)
    return target


def _assemble_file(
    entry: FileEntry, seeds: dict[str, fetching.SeedSpan], staging: Path, path: Path
) -> None:
    whole = hashlib.sha256()
    with open(path, "wb") as out:
        for chunk in entry.chunks:
            staged = staging / "chunks" / chunk.digest
            data = fetching.read_verified(chunk.digest, seeds.get(chunk.digest), staged)
            if data is None:
                staged.unlink(missing_ok=True)
                raise SyncError("ChunkCorrupt", f"{entry.path}: chunk {chunk.digest} missing or "
                                "damaged on disk; it will be fetched again")  # fmt: skip
            whole.update(data)
            out.write(data)
        out.flush()
        os.fsync(out.fileno())
    if whole.hexdigest() != entry.digest:
        raise SyncError("DigestMismatch", f"{entry.path}: assembled sha256 {whole.hexdigest()}, "
                        f"manifest says {entry.digest}")  # fmt: skip


def _smoke_test(
    desired: DesiredModel, manifest: Manifest, assembled: Path, env: Environment, runs: int
) -> runtime.Check:
    env.set_phase("Loading")
    golden = None
    tolerance = manifest.golden.tolerance if manifest.golden else Tolerance()
    if manifest.golden is not None and desired.require_test_vectors:
        try:
            golden = fetching.golden_vectors(env.source, manifest, env.data_dir)
        except StoreError as exc:
            raise SyncError(fetching.classify(exc), str(exc)) from exc
    env.set_phase("Testing")
    with crash_guard(env.data_dir, desired):
        check = runtime.check_model(assembled / manifest.main_file.path, golden, tolerance,
                                    env.providers, runs, policy.Gate.of(desired))  # fmt: skip
    if not check.ok:
        shutil.rmtree(assembled, ignore_errors=True)
        raise SyncError(check.reason, check.message)
    return check


CRASHES_BEFORE_GIVING_UP = 3
"""Deaths of the agent while one version was in onnxruntime before that version is failed: a
model that crashes the runtime must not crash-loop the agent (one death may be a plain kill)."""


@contextmanager
def crash_guard(data_dir: Path, desired: DesiredModel) -> Iterator[None]:
    """Count the agent's deaths while `desired` runs in onnxruntime; refuse it after too many.

    A marker `<data>/state/testing/<ns>_<deployment>.json` is written before the model is loaded
    and removed after its test returns, whatever the outcome; a marker found on the next attempt
    means the process died in between.
    """
    marker = layout.state_file(data_dir, "testing", desired.name)
    what = {"version": desired.version, "variant": desired.variant}
    deaths = 0
    if marker.exists():
        found = json.loads(marker.read_text() or "{}")
        deaths = int(found.get("deaths", 0)) + 1 if found.get("what") == what else 0
    if deaths >= CRASHES_BEFORE_GIVING_UP:
        raise SyncError("RuntimeCrashed", f"{desired.version}/{desired.variant}: the agent died "
                        f"{deaths} times while onnxruntime loaded or ran it; not trying again "
                        "until the spec entry changes")  # fmt: skip
    layout.write_atomic(marker, json.dumps({"what": what, "deaths": deaths}).encode())
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def _activate(model_dir: ModelDir, item: Installed) -> None:
    try:
        model_dir.activate(item)
    except IntegrityError as exc:
        if model_dir.link("current") != item:
            model_dir.remove(item)
        raise SyncError("Corrupted", f"{exc}; it is fetched from the store again") from exc


def switch(desired: DesiredModel, data_dir: Path) -> Installed:
    """Activate a version already on disk (rollback without download), verifying it first."""
    model_dir = ModelDir(data_dir, desired.name)
    item = Installed(desired.version, desired.variant)
    _activate(model_dir, item)
    return item


def collect_garbage(model_dir: ModelDir, keep_version: str) -> list[Installed]:
    """Delete versions beyond current, previous and keepVersion; return what was deleted."""
    on_disk = model_dir.installed()
    keep: set[Installed | None] = {model_dir.link("current"), model_dir.link("previous")}
    keep |= {item for item in on_disk if item.version == keep_version}
    garbage = policy.select_garbage(on_disk, frozenset(keep))
    for item in garbage:
        model_dir.remove(item)
    return garbage
