"""`edge-rollout store verify`: check every release, manifest and object of a directory store.

Reads through the same verifying `StoreReader` the operator and agents use, and reassembles every
variant file. Prints one line per problem; exits 1 if any. Must not modify the store.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_rollout.store import assembly, keys
from edge_rollout.store.errors import StoreError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import open_transport


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("store", help="inspect a store")
    sub = p.add_subparsers(dest="store_command", required=True, metavar="SUBCOMMAND")
    v = sub.add_parser("verify", help="verify signatures, digests and files of a whole store")
    v.add_argument("store", help="store directory (or file:// URL)")
    v.add_argument("--public-key", required=True, type=Path, help="public key file (PEM/base64)")
    v.set_defaults(handler=run_verify)


def releases(root: Path) -> list[tuple[str, str]]:
    """(model, version) of every published release in a directory store."""
    return sorted((p.parent.parent.name, p.parent.name) for p in root.glob("models/*/*/index.json"))


def verify_release(reader: StoreReader, model: str, version: str) -> list[str]:
    """Problems with one release (empty when everything verifies)."""
    try:
        release = reader.fetch_release(model, version)
    except StoreError as exc:
        return [str(exc)]
    problems: list[str] = []
    for entry in release.variants:
        try:
            _, manifest = reader.fetch_variant(release, entry.name)
            assembly.assemble(reader, manifest)
            reader.fetch_golden(manifest)
            for f in manifest.files:
                for t in f.tensors:
                    for d in t.deltas:
                        reader.fetch_chunk(d.blob)
        except StoreError as exc:
            problems.append(f"{model}@{version}/{entry.name}: {exc}")
    return problems


def run_verify(args: argparse.Namespace) -> int:
    transport = open_transport(args.store)
    root = Path(args.store.removeprefix("file://"))
    reader = StoreReader(transport, keys.load_public_key(args.public_key.read_text()))
    found = releases(root)
    problems = [p for model, version in found for p in verify_release(reader, model, version)]
    for problem in problems:
        print(problem)
    print(f"{len(found)} release(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0
