"""`edge-rollout diff N@V1 N@V2`: per variant, every byte a node holding V1 fetches for V2.

Reads both releases through the verifying reader, sizes what the agent downloads (manifest or
manifest delta, its signature, golden vectors, chunks, tensor and gap deltas) with
`content.fetchplan`, and prints a table or, with `-o json`, `fetchBytes` and its breakdown.
Also the first install (from nothing). Must not modify the store.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from edge_rollout.api.manifest import Manifest
from edge_rollout.api.release import Release, VariantEntry
from edge_rollout.cli import store as store_cli
from edge_rollout.content import fetchplan
from edge_rollout.store import codec
from edge_rollout.store.errors import NotFoundError, StoreError
from edge_rollout.store.reader import StoreReader, index_path
from edge_rollout.store.transport import open_transport

LEGEND = """\
fetch: bytes an agent holding OLD downloads for NEW (HTTP bodies, as stored): the manifest delta
  (or whole manifest), its .sig, golden vectors it does not hold, chunks, tensor and gap deltas.
first install: the same from nothing (whole manifest, .sig, golden vectors, every chunk).
chunks only: the fetch when deltas are off (Delivery delta: Off).
The release index and its .sig are read by the operator, not by agents: listed apart.
-o json gives the breakdown of each figure."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("diff", help="bytes to fetch vs reuse between two releases")
    p.add_argument("old", help="MODEL@VERSION a node holds")
    p.add_argument("new", help="MODEL@VERSION it updates to")
    p.add_argument("--store", required=True, help="store directory or URL")
    store_cli.public_key_option(p, "a trusted public key file; repeat it for several (the old"
                                " and the new key while rotating)", required=True)  # fmt: skip
    p.add_argument("--variant", default=None, help="only this variant")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(handler=run)


def _split(ref: str) -> tuple[str, str]:
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        raise StoreError(ref, "name", "not MODEL@VERSION", "Write it like detector@1.2.0")
    return name, version


def _manifest_cost(reader: StoreReader, entry: VariantEntry, held: Manifest | None) -> int:
    """Bytes of the wanted manifest for a node holding `held`: its manifest delta, else whole."""
    if held is None:
        return entry.manifest_size
    if codec.sha256_hex(codec.canonical_json(held)) == entry.manifest_digest.removeprefix(
        "sha256:"
    ):
        return 0
    try:
        return len(reader.fetch_manifest_delta(entry.manifest_digest, held))
    except NotFoundError:
        return entry.manifest_size


def _size(reader: StoreReader, path: str) -> int:
    return len(reader.transport.get(path))


def _cost(
    reader: StoreReader, entry: VariantEntry, held: Manifest | None, wanted: Manifest, deltas: bool
) -> fetchplan.FetchCost:
    sig = _size(reader, codec.signature_path(entry.manifest_digest.removeprefix("sha256:")))
    manifest = _manifest_cost(reader, entry, held if deltas else None)
    _, cost = fetchplan.plan(
        held,
        wanted,
        manifest_bytes=manifest,
        signature_bytes=sig,
        held_golden=frozenset(fetchplan.held_golden(held)),
        deltas=deltas,
    )
    return cost


def _variant(
    reader: StoreReader, old: Release, new: Release, entry: VariantEntry
) -> dict[str, Any]:
    _, wanted = reader.fetch_variant(new, entry.name)
    held = reader.fetch_variant(old, entry.name)[1] if old.variant(entry.name) else None
    update = _cost(reader, entry, held, wanted, deltas=True)
    plain = _cost(reader, entry, held, wanted, deltas=False)
    first = _cost(reader, entry, None, wanted, deltas=True)
    return {
        "variant": entry.name,
        "held": held is not None,
        "fetchBytes": update.total,
        "breakdown": update.as_json(),
        "chunkDownloads": update.chunk_count,
        "withoutDeltas": {"fetchBytes": plain.total, "breakdown": plain.as_json()},
        "firstInstall": {"fetchBytes": first.total, "breakdown": first.as_json()},
    }


def _index_bytes(reader: StoreReader, release: Release) -> int:
    path = index_path(release.model, release.version)
    return _size(reader, path) + _size(reader, path + ".sig")


def report(reader: StoreReader, old_ref: str, new_ref: str, variant: str | None) -> dict[str, Any]:
    """The `-o json` document: per variant, the update, without deltas and from nothing."""
    old, new = (reader.fetch_release(*_split(r)) for r in (old_ref, new_ref))
    rows = [_variant(reader, old, new, e) for e in new.variants if variant in (None, e.name)]
    return {
        "from": old_ref,
        "to": new_ref,
        "variants": rows,
        "operatorIndexBytes": _index_bytes(reader, new),
    }


def _table(doc: dict[str, Any]) -> Table:
    columns = ["variant", "fetch", "manifest+sig", "golden", "chunks", "deltas", "chunks only"]
    table = Table(*columns, "first install", "ratio", title=f"{doc['from']} -> {doc['to']}")
    for v in doc["variants"]:
        b, first = v["breakdown"], v["firstInstall"]["fetchBytes"]
        table.add_row(
            v["variant"],
            f"{v['fetchBytes']:,}",
            f"{b['manifest'] + b['manifestSignature']:,}",
            f"{b['goldenVectors']:,}",
            f"{b['chunks']:,} ({v['chunkDownloads']})",
            f"{b['tensorDeltas'] + b['gapDeltas']:,}",
            f"{v['withoutDeltas']['fetchBytes']:,}",
            f"{first:,}",
            f"{v['fetchBytes'] / max(first, 1):.1%}",
        )
    return table


def run(args: argparse.Namespace) -> int:
    try:
        reader = StoreReader(open_transport(args.store), args.public_key)
        doc = report(reader, args.old, args.new, args.variant)
    except StoreError as exc:
        print(f"error: {exc}")
        return 1
    if args.output == "json":
        print(json.dumps(doc, indent=2))
        return 0
    console = Console()
    console.print(_table(doc))
    console.print(f"release index + .sig (read by the operator): {doc['operatorIndexBytes']:,}")
    console.print(LEGEND)
    return 0
