"""`edge-rollout publish`: build, measure, chunk and sign the variants of one model release.

Gathers (`cli.building`: load the ONNX model, build fp16/int8, take the user's extra variants,
measure each in onnxruntime), packs (chunks, tensor and gap deltas against the previous release,
golden vectors, manifests), then makes the release visible with one atomic rename and prints a
ModelDeployment. Must not touch a cluster.
"""

from __future__ import annotations

import argparse
import functools
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from edge_rollout.api.manifest import FileEntry, GoldenRef, Manifest, Tolerance
from edge_rollout.api.modeldeployment import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelRef,
    StoreRef,
)
from edge_rollout.api.release import Measurements, Release, Requirements, VariantEntry
from edge_rollout.cli import building, measuring, onnxmodel, packing
from edge_rollout.store import assembly, codec, keys
from edge_rollout.store.errors import StoreError
from edge_rollout.store.reader import StoreReader, index_path
from edge_rollout.store.transport import FileTransport
from edge_rollout.store.writer import DirectoryStore

MEMORY_MARGIN = 1.25
console = building.console


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("publish", help="build, measure, chunk and sign a model release")
    p.add_argument("model", type=Path, help="the FP32 ONNX model")
    p.add_argument("--name", required=True, help="model name in the store (lower case)")
    p.add_argument("--version", required=True, help="release version, e.g. 1.4.0")
    p.add_argument("--variants", default="fp32,fp16,int8", help="comma list of fp32,fp16,int8")
    p.add_argument("--store", required=True, type=Path, help="directory store to write")
    p.add_argument("--key", required=True, type=Path, help="private key from edge-rollout keygen")
    p.add_argument(
        "--base-version",
        default=None,
        help="release to compute tensor deltas against (default: latest published)",
    )
    p.add_argument("--store-url", default=None, help="URL nodes use for the store (printed YAML)")
    p.add_argument("--runs", type=int, default=30, help="timed inferences per variant")
    p.add_argument("--samples", type=int, default=4, help="sample inputs for agreement")
    p.add_argument(
        "--golden-from",
        default=None,
        metavar="VERSION",
        help="regression gate: nodes must reproduce VERSION's golden outputs (same variant)"
        " within --golden-atol / --golden-min-cosine, instead of this release's own outputs",
    )
    p.add_argument("--golden-atol", type=float, default=0.05, help="with --golden-from")
    p.add_argument("--golden-min-cosine", type=float, default=0.99, help="with --golden-from")
    p.add_argument(
        "--extra-variant",
        action="append",
        metavar="NAME=PATH[:CLASS[:EP+EP...[:PRECISION]]]",
        help="publish a file you built (pruned, distilled, for a vendor's NPU) as one more"
        " variant, e.g. int8-npu=model_hailo.onnx:npu:HailoExecutionProvider:int8; measured on"
        " its providers when this machine has one, else published as not measured (repeatable)",
    )
    p.add_argument(
        "--calibration",
        type=Path,
        default=None,
        metavar="DIR_OR_NPZ",
        help="sample inputs (.npz named by input, first axis = samples; or a directory of .npz or"
        " .npy): int8 becomes static quantization calibrated on them, and agreement with fp32"
        " is measured on them",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        release = publish(args)
    except (onnxmodel.ModelError, StoreError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    print(deployment_yaml(release, args))
    return 0


def _check_args(args: argparse.Namespace) -> tuple[list[str], list[building.ExtraVariant]]:
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in building.BUILT_IN]
    if unknown or not names:
        raise ValueError(f"unknown variants {unknown}: choose from fp32, fp16, int8")
    if not building.NAME.fullmatch(args.name) or len(args.name) > 63:
        raise ValueError(f"--name {args.name!r}: use lower-case letters, digits, '-', '.', '_'")
    extras = [building.parse_extra(spec) for spec in args.extra_variant or []]
    seen = [e.name for e in extras]
    if len(set(seen)) != len(seen):
        raise ValueError(f"--extra-variant names repeat: {', '.join(seen)}")
    return names, extras


def publish(args: argparse.Namespace) -> Release:
    """Build everything, then make the release visible last; returns the published index."""
    names, extras = _check_args(args)
    store = DirectoryStore(args.store)
    store.check_writable()
    key = keys.load_private_key(args.key)
    model = onnxmodel.load(args.model)
    _refuse_known_conflict(store, args, {"fp32", *names, *(e.name for e in extras)})
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization logs advice at WARNING
    with tempfile.TemporaryDirectory() as tmp:
        built = building.build_variants(args, model, names, extras, Path(tmp))
    base = _base_release(store, key, args)
    entries = [_pack_variant(store, key, args, b, built[0], base) for b in built]
    release = Release(
        model=args.name,
        version=args.version,
        created=datetime.now(UTC).isoformat(),
        variants=entries,
        previous_version=base.version if base else "",
    )
    if not store.publish(release, key):
        console.print(f"{args.name}@{args.version} was already published with the same content")
    return release


def _refuse_known_conflict(
    store: DirectoryStore, args: argparse.Namespace, wanted: set[str]
) -> None:
    """Before building anything: refuse a version already published from another model file (its
    fp32 variant is the model as given) or with other variants. Same file and variants go on, as
    republishing identical content is a no-op; other differences are caught by `store.publish`."""
    existing = store.published(args.name, args.version)
    if existing is None:
        return
    fp32 = existing.variant("fp32")
    digest = f"sha256:{codec.sha256_hex(args.model.read_bytes())}"
    if fp32 is not None and fp32.file_digest not in ("", digest):
        found = f"from another model file (its fp32 file is not {args.model.name})"
    elif {v.name for v in existing.variants} != wanted:
        found = f"with variants {', '.join(sorted(v.name for v in existing.variants))}"
    else:
        return
    raise StoreError(
        str(store.root / index_path(args.name, args.version)),
        "immutable",
        f"{args.name}@{args.version} is already published {found}",
        "Publish under a new version; published versions never change",
    )


def _base_release(store: DirectoryStore, key: Any, args: argparse.Namespace) -> Release | None:
    if args.base_version == "":
        return None
    reader = StoreReader(FileTransport(store.root), key.public_key())
    if args.base_version:
        return reader.fetch_release(args.name, args.base_version)
    older = [r for r in store.versions(args.name) if r.version != args.version]
    return reader.fetch_release(args.name, older[-1].version) if older else None


def _held_bases(
    store: DirectoryStore, key: Any, release: Release | None, variant: str
) -> dict[str, packing.Base]:
    """Per file path, the previous release's same variant: its tensors' bytes and its chunks."""
    if release is None or release.variant(variant) is None:
        return {}
    reader = StoreReader(FileTransport(store.root), key.public_key())
    _, manifest = reader.fetch_variant(release, variant)
    files, _ = assembly.assemble(reader, manifest)
    digests = frozenset(c.digest for f in manifest.files for c in f.chunks)
    return {
        f.path: packing.base_of(release.version, f, files[f.path], digests) for f in manifest.files
    }


def _carried_golden(
    store: DirectoryStore, key: Any, args: argparse.Namespace, variant: str
) -> GoldenRef:
    """The golden vectors of the same variant of an earlier release, as a regression gate."""
    reader = StoreReader(FileTransport(store.root), key.public_key())
    earlier = reader.fetch_release(args.name, args.golden_from)
    name = variant if earlier.variant(variant) else earlier.variants[0].name
    _, manifest = reader.fetch_variant(earlier, name)
    vectors = reader.fetch_golden(manifest)
    if vectors is None:
        raise ValueError(f"{args.name}@{args.golden_from} variant {name} has no golden vectors")
    blob = store.put_blob(codec.canonical_json(vectors))
    tolerance = Tolerance(rtol=0.0, atol=args.golden_atol, min_cosine=args.golden_min_cosine)
    return GoldenRef(blob=blob, cases=len(vectors.cases), tolerance=tolerance)


def _pack_variant(
    store: DirectoryStore,
    key: Any,
    args: argparse.Namespace,
    b: building.Built,
    ref: building.Built,
    base: Release | None,
) -> VariantEntry:
    bases = _held_bases(store, key, base, b.name)
    files: list[FileEntry] = []
    with building.progress_bar() as progress:
        for path, data in b.files.items():
            task = progress.add_task(f"chunk + compress {b.name}/{path}", total=len(data))
            files.append(
                packing.pack_file(
                    store,
                    path,
                    data,
                    b.spans.get(path, []),
                    bases.get(path),
                    functools.partial(progress.advance, task),
                )
            )
    golden = (
        _carried_golden(store, key, args, b.name) if args.golden_from else _own_golden(store, b)
    )
    manifest = Manifest(
        model=args.name,
        version=args.version,
        variant=b.name,
        files=files,
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
        file_digest=f"sha256:{files[0].digest}",
        download_bytes=sum(c.stored for f in files for c in f.chunks),
        built_by=b.built_by,
    )


def _own_golden(store: DirectoryStore, b: building.Built) -> GoldenRef | None:
    """This variant's own outputs on 2 samples; none when it could not be run here."""
    if b.measured is None:
        return None
    return packing.pack_golden(store, b.precision, b.inputs[:2], b.measured.outputs[:2])


def _requirements(b: building.Built) -> Requirements:
    if b.measured is None:
        return b.requirements
    peak = int(b.measured.peak_memory_bytes * MEMORY_MARGIN)
    return b.requirements.model_copy(update={"min_memory_bytes": peak})


def _measurements(b: building.Built, ref: building.Built) -> Measurements:
    file_bytes = sum(len(d) for d in b.files.values())
    if b.measured is None or ref.measured is None:
        return Measurements(file_bytes=file_bytes, not_measured=b.not_measured)
    return Measurements(
        file_bytes=file_bytes,
        peak_memory_bytes=b.measured.peak_memory_bytes,
        latency_p50_ms=round(b.measured.latency_p50_ms, 4),
        latency_p95_ms=round(b.measured.latency_p95_ms, 4),
        agreement=measuring.agreement(ref.measured.outputs, b.measured.outputs),
        measured_with=list(b.measured_with),
    )


def deployment_yaml(release: Release, args: argparse.Namespace) -> str:
    """A ModelDeployment for this release, ready for `kubectl apply -f -`."""
    key = keys.load_private_key(args.key)
    url = args.store_url or args.store.resolve().as_uri()
    spec = ModelDeploymentSpec(
        model=ModelRef(
            name=release.model,
            version=release.version,
            store=StoreRef(url=url, public_key=keys.public_key_pem(key.public_key())),
        )
    )
    md = ModelDeployment(metadata={"name": release.model}, spec=spec)
    body = md.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    body = {"apiVersion": md.api_version, "kind": md.kind, **body}
    body.pop("status", None)
    return yaml.dump(body, Dumper=_BlockDumper, sort_keys=False)


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the PEM key) as `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)
