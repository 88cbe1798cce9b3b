"""Publishes one model release: build and measure the variants, pack them, then make it visible.

Gathers (`publishing.building`: load the ONNX model, build fp16/int8, take the user's extra
variants, measure each in onnxruntime), packs (chunks, tensor and gap deltas against the previous
release, golden vectors, manifests), then makes the release visible with one atomic rename. Takes
a `PublishRequest`, reports through `Progress`; must not parse arguments, print or touch a cluster.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from edge_rollout.api.manifest import FileEntry, GoldenRef, Manifest, Tolerance
from edge_rollout.api.release import Measurements, Release, Requirements, VariantEntry
from edge_rollout.content import golden
from edge_rollout.publishing import building, files, measuring, onnxmodel, packing
from edge_rollout.publishing.request import SILENT, Progress, PublishRequest
from edge_rollout.store import keys
from edge_rollout.store.errors import StoreError, VerificationError
from edge_rollout.store.reader import StoreReader, index_path
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore

MEMORY_MARGIN = 1.25


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice at WARNING on the root logger: only errors while
    building, and the caller's level back afterwards (a library does not keep global changes)."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(saved)


def publish(req: PublishRequest, progress: Progress = SILENT) -> Release:
    """Build everything, then make the release visible last; returns the published index."""
    req.check()
    store = DirectoryStore(req.store)
    store.check_writable()
    key = keys.load_private_key(req.key)
    model = onnxmodel.load(req.model)
    given = building.infer_precision(model)
    wanted = {*building.variant_names(req, given, model), *(e.name for e in req.extra_variants)}
    _refuse_known_conflict(store, req, given, wanted)
    # Earlier releases (the delta base, --golden-from) may be signed by a key being rotated out.
    trusted = (*keys.trust_one(key.public_key()), *req.trusted_keys)
    with tempfile.TemporaryDirectory() as tmp:
        with quiet_root_logger():
            built = building.build_variants(req, model, Path(tmp), progress)
        base = _base_release(store, trusted, req)
        smallest = min(b.file_bytes for b in built)
        budget = req.golden_budget if req.golden_budget is not None else golden.budget(smallest)
        held = Path(tmp, "held")
        entries = [
            _pack_variant(store, trusted, req, b, built[0], base, progress, budget, held)
            for b in built
        ]
    release = Release(
        model=req.name,
        version=req.version,
        created=datetime.now(UTC).isoformat(),
        variants=entries,
        previous_version=base.version if base else "",
    )
    if not store.publish(release, key):
        progress.note(f"{req.name}@{req.version} was already published with the same content")
    return release


def _refuse_known_conflict(
    store: DirectoryStore, req: PublishRequest, given: str, wanted: set[str]
) -> None:
    """Before building anything: refuse a version already published from another model file (its
    variant named by the model's precision is the model as given) or with other variants. Same
    file and variants go on, as republishing identical content is a no-op; other differences are
    caught by `store.publish`."""
    existing = store.published(req.name, req.version)
    if existing is None:
        return
    as_given = existing.variant(given)
    digest = f"sha256:{files.sha256_hex(req.model)}"
    if as_given is not None and as_given.file_digest not in ("", digest):
        found = f"from another model file (its {given} file is not {req.model.name})"
    elif not _same_variants({v.name for v in existing.variants}, wanted, req):
        found = f"with variants {', '.join(sorted(v.name for v in existing.variants))}"
    else:
        return
    raise StoreError(
        str(store.root / index_path(req.name, req.version)),
        "immutable",
        f"{req.name}@{req.version} is already published {found}",
        "Publish under a new version; published versions never change",
    )


def _same_variants(existing: set[str], wanted: set[str], req: PublishRequest) -> bool:
    """With the default variants, one left out last time (it failed to build) may be again."""
    return existing == wanted if req.variants is not None else existing <= wanted


def _base_release(
    store: DirectoryStore, trusted: Sequence[keys.Trusted], req: PublishRequest
) -> Release | None:
    if req.base_version == "":
        return None
    reader = StoreReader(FileTransport(store.root), trusted)
    if req.base_version:
        return reader.fetch_release(req.name, req.base_version)
    older = [r for r in store.versions(req.name) if r.version != req.version]
    return reader.fetch_release(req.name, older[-1].version) if older else None


def _held_bases(
    store: DirectoryStore,
    trusted: Sequence[keys.Trusted],
    release: Release | None,
    variant: str,
    stack: contextlib.ExitStack,
    held: Path,
) -> dict[str, packing.Base]:
    """Per file path, the previous release's same variant: its tensors (read from a copy under
    `held`, mapped while `stack` is open) and its chunks."""
    if release is None or release.variant(variant) is None:
        return {}
    reader = StoreReader(FileTransport(store.root), trusted)
    _, manifest = reader.fetch_variant(release, variant)
    digests = frozenset(c.digest for f in manifest.files for c in f.chunks)
    bases: dict[str, packing.Base] = {}
    for f in manifest.files:
        copy = _held_copy(reader, f, held / variant / f.path)
        data = stack.enter_context(files.mapped(copy))
        bases[f.path] = packing.base_of(release.version, f, data, digests)
    return bases


def _held_copy(reader: StoreReader, entry: FileEntry, target: Path) -> Path:
    """The held version's file written chunk by chunk from the store, each chunk verified by
    `reader` and the whole file by its digest (no copy of it in memory)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    with target.open("wb") as out:
        for ref in entry.chunks:
            data = reader.fetch_chunk(ref)
            whole.update(data)
            out.write(data)
    if whole.hexdigest() != entry.digest:
        raise VerificationError(
            str(target),
            "digest",
            "the previous release's file rebuilt from its chunks does not match its manifest",
            "The store is damaged: `edge-rollout store verify` names what; publish with"
            " --base-version '' to publish without deltas",
        )
    return target


def _carried_golden(
    store: DirectoryStore,
    trusted: Sequence[keys.Trusted],
    req: PublishRequest,
    variant: str,
    earlier_version: str,
) -> GoldenRef:
    """The golden vectors of the same variant of an earlier release, as a regression gate."""
    reader = StoreReader(FileTransport(store.root), trusted)
    earlier = reader.fetch_release(req.name, earlier_version)
    name = variant if earlier.variant(variant) else earlier.variants[0].name
    _, manifest = reader.fetch_variant(earlier, name)
    if manifest.golden is None:
        raise ValueError(f"{req.name}@{earlier_version} variant {name} has no golden vectors")
    reader.fetch_golden(manifest)  # verified and readable: its blobs are reused by digest
    tolerance = Tolerance(rtol=0.0, atol=req.golden_atol, min_cosine=req.golden_min_cosine)
    return manifest.golden.model_copy(update={"tolerance": tolerance})


def _pack_files(
    store: DirectoryStore, b: building.Built, bases: dict[str, packing.Base], progress: Progress
) -> list[FileEntry]:
    entries: list[FileEntry] = []
    for path, on_disk in b.files.items():
        task = f"chunk + compress {b.name}/{path}"
        progress.start(task, on_disk.stat().st_size)
        advance = functools.partial(progress.advance, task)
        spans = b.spans.get(path, [])
        with files.mapped(on_disk) as data:
            entries.append(packing.pack_file(store, path, data, spans, bases.get(path), advance))
    return entries


def _pack_variant(
    store: DirectoryStore,
    trusted: Sequence[keys.Trusted],
    req: PublishRequest,
    b: building.Built,
    ref: building.Built,
    base: Release | None,
    progress: Progress,
    golden_budget: int,
    held: Path,
) -> VariantEntry:
    with contextlib.ExitStack() as stack:  # the held copy goes once this variant is packed
        stack.callback(shutil.rmtree, held / b.name, ignore_errors=True)
        bases = _held_bases(store, trusted, base, b.name, stack, held)
        entries = _pack_files(store, b, bases, progress)
    golden = (
        _carried_golden(store, trusted, req, b.name, req.golden_from)
        if req.golden_from
        else _own_golden(store, b, golden_budget)
    )
    manifest = Manifest(
        model=req.name,
        version=req.version,
        variant=b.name,
        files=entries,
        onnx=b.facts,
        golden=golden,
    )
    digest, stored = store.put_manifest(manifest)
    return VariantEntry(
        name=b.name,
        precision=b.precision,
        manifest_digest=digest,
        manifest_size=stored,
        requirements=_requirements(b),
        measurements=_measurements(b, ref),
        file_digest=f"sha256:{entries[0].digest}",
        download_bytes=sum(c.stored for f in entries for c in f.chunks),
        built_by=b.built_by,
    )


def _own_golden(store: DirectoryStore, b: building.Built, budget: int) -> GoldenRef | None:
    """This variant's own outputs on up to 2 samples, as many as fit `budget` (at least one);
    none when it could not be run here."""
    if b.measured is None:
        return None
    return packing.pack_golden(store, b.precision, b.inputs[:2], b.measured.outputs[:2], budget)


def _requirements(b: building.Built) -> Requirements:
    if b.measured is None:
        return b.requirements
    peak = int(b.measured.peak_memory_bytes * MEMORY_MARGIN)
    return b.requirements.model_copy(update={"min_memory_bytes": peak})


def _measurements(b: building.Built, ref: building.Built) -> Measurements:
    file_bytes = b.file_bytes
    if b.measured is None or ref.measured is None:
        return Measurements(file_bytes=file_bytes, not_measured=b.not_measured)
    return Measurements(
        file_bytes=file_bytes,
        peak_memory_bytes=b.measured.peak_memory_bytes,
        latency_p50_ms=round(b.measured.latency_p50_ms, 4),
        latency_p95_ms=round(b.measured.latency_p95_ms, 4),
        agreement=measuring.agreement(ref.measured.outputs, b.measured.outputs),
        measured_with=list(b.measured_with),
        input_shapes=b.input_shapes,
    )
