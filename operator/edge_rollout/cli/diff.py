"""`edge-rollout diff N@V1 N@V2`: per variant, chunks and bytes a node fetches vs reuses.

Reads both releases through the verifying reader and prints `content.diffing.diff_manifests`, with
and without deltas. Bytes include the manifest: whole without deltas, as the manifest delta against
the held one (when the store has it) with. Must not modify the store.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge_rollout.api.manifest import Manifest
from edge_rollout.api.release import VariantEntry
from edge_rollout.content import diffing
from edge_rollout.store import keys
from edge_rollout.store.errors import NotFoundError, StoreError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import open_transport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("diff", help="bytes to fetch vs reuse between two releases")
    p.add_argument("old", help="MODEL@VERSION a node holds")
    p.add_argument("new", help="MODEL@VERSION it updates to")
    p.add_argument("--store", required=True, help="store directory or URL")
    p.add_argument("--public-key", required=True, type=Path, help="public key file")
    p.add_argument("--variant", default=None, help="only this variant")
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
    try:
        return len(reader.fetch_manifest_delta(entry.manifest_digest, held))
    except NotFoundError:
        return entry.manifest_size


def run(args: argparse.Namespace) -> int:
    try:
        reader = StoreReader(
            open_transport(args.store), keys.load_public_key(args.public_key.read_text())
        )
        old, new = (reader.fetch_release(*_split(r)) for r in (args.old, args.new))
        table = Table(
            "variant",
            "chunks reused",
            "fetch (chunks only)",
            "fetch (with deltas)",
            "deltas",
            "full download",
            "ratio",
        )
        for entry in new.variants:
            if args.variant and entry.name != args.variant:
                continue
            _, wanted = reader.fetch_variant(new, entry.name)
            held = reader.fetch_variant(old, entry.name)[1] if old.variant(entry.name) else None
            plain = diffing.diff_manifests(held, wanted, deltas=False)
            best = diffing.diff_manifests(held, wanted)
            full = entry.download_bytes + entry.manifest_size
            fetch = best.fetch_bytes + _manifest_cost(reader, entry, held)
            table.add_row(
                entry.name,
                f"{best.chunks_reused}/{best.chunks_total}",
                f"{plain.fetch_bytes + entry.manifest_size:,}",
                f"{fetch:,}",
                str(len(best.deltas)),
                f"{full:,}",
                f"{fetch / max(full, 1):.1%}",
            )
    except StoreError as exc:
        print(f"error: {exc}")
        return 1
    Console().print(table)
    return 0
