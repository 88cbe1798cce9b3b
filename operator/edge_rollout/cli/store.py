"""`edge-rollout store verify|gc|sign`: check a whole store; collect garbage; (counter)sign.

`verify` reads through the same verifying `StoreReader` the operator and agents use (trusting
every `--public-key`), reassembles every variant file, and checks every delta and manifest delta;
it prints the key that signed each release, one line per problem, and exits 1 if any. Over
http(s) there is no listing, so it takes the releases to check (`--release MODEL@VERSION`) and
follows each one's `previousVersion`. `gc` removes from a directory store what no release
references; `sign` adds the manifest signatures and deltas older releases lack, with `--index` the
signature of an index the user vouches for, and with `--public-key` countersigns releases signed
by those keys (key rotation). Must not modify the store otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_rollout.api.release import Release, VariantEntry
from edge_rollout.store import assembly, codec, collecting, keys
from edge_rollout.store.errors import NotFoundError, StoreError
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import FileTransport, open_transport
from edge_rollout.store.writer import DirectoryStore


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("store", help="inspect or clean a store")
    sub = p.add_subparsers(dest="store_command", required=True, metavar="SUBCOMMAND")
    v = sub.add_parser("verify", help="verify signatures, digests, deltas and files of a store")
    v.add_argument("store", help="store directory, file:// or http(s):// URL")
    public_key_option(v, "a trusted public key file (PEM/base64); repeat it for several (a"
                      " release signed by any of them verifies)", required=True)  # fmt: skip
    v.add_argument(
        "--release",
        action="append",
        default=[],
        metavar="MODEL@VERSION",
        help="check this release and its previous ones (required over http(s))",
    )
    v.add_argument("--ca-bundle", default=None, help="CA bundle for an https store")
    v.set_defaults(handler=run_verify)
    g = sub.add_parser("gc", help="remove objects no release references (failed publishes)")
    g.add_argument("store", type=Path, help="store directory")
    g.add_argument("--grace", type=float, default=3600.0,
                   help="keep unreferenced objects younger than this many seconds (a publish"
                   " may be running); default 3600")  # fmt: skip
    g.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    g.set_defaults(handler=run_gc)
    s = sub.add_parser(
        "sign",
        help="sign the manifests of releases published before manifests were signed (and add"
        " their manifest deltas)",
    )
    s.add_argument("store", type=Path, help="store directory")
    s.add_argument("--key", required=True, type=Path, help="the private key to sign with")
    public_key_option(s, "countersign with --key every release (or each --release) whose index"
                      " a signature by this key verifies: the release then carries both"
                      " signatures (key rotation; repeatable)")  # fmt: skip
    s.add_argument(
        "--release",
        action="append",
        default=[],
        metavar="MODEL@VERSION",
        help="with --public-key: countersign only this release (repeatable)",
    )
    s.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="MODEL@VERSION",
        help="also sign this release's index.json when its index.json.sig is missing: only for"
        " an index you trust, e.g. one a sync copied without its signature (repeatable)",
    )
    s.set_defaults(handler=run_sign)


def public_key_option(
    parser: argparse.ArgumentParser, help: str, *, required: bool = False
) -> None:
    """`--public-key [ID=]FILE`, repeatable: the trusted keys of a command, as keys.Trusted."""
    parser.add_argument("--public-key", action="append", default=None if required else [],
                        required=required, type=named_key, metavar="[ID=]FILE",
                        help=help)  # fmt: skip


def named_key(text: str) -> keys.Trusted:
    """`ID=FILE` or `FILE` (the id is then the file's name without .pub/.pem)."""
    name, sep, file = text.partition("=")
    path = Path(file if sep and name and "/" not in name else text)
    if not (sep and name and "/" not in name):
        name = path.name.removesuffix(".pub").removesuffix(".pem")
    try:
        return keys.Trusted(name, keys.load_public_key(path.read_text(), str(path)))
    except (OSError, StoreError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def releases(root: Path) -> list[tuple[str, str]]:
    """(model, version) of every published release in a directory store."""
    return sorted(
        (p.parent.parent.name, p.parent.name)
        for p in root.glob("models/*/*/index.json")
        if not p.parent.name.startswith(".")
    )


def _check_variant(reader: StoreReader, release: Release, name: str, previous: Release | None) -> (
    None
):  # fmt: skip
    _, manifest = reader.fetch_variant(release, name)
    assembly.assemble(reader, manifest)
    reader.fetch_golden(manifest)
    for f in manifest.files:
        for d in [d.blob for t in f.tensors for d in t.deltas] + [g.blob for g in f.gap_deltas]:
            reader.fetch_chunk(d)
    held_entry = previous.variant(name) if previous is not None else None
    entry = release.variant(name)
    if held_entry is not None and entry is not None:
        _check_manifest_delta(reader, entry, held_entry.manifest_digest)


def _check_manifest_delta(reader: StoreReader, entry: VariantEntry, held: str) -> None:
    """A manifest delta, when there is one, must rebuild exactly the manifest it names."""
    held_manifest = reader.fetch_manifest(held)
    try:
        frame = reader.fetch_manifest_delta(entry.manifest_digest, held_manifest)
    except NotFoundError:
        return  # optional: agents then fetch the whole manifest
    target = entry.manifest_digest.removeprefix("sha256:")
    try:
        plain = codec.decompress_against(frame, codec.canonical_json(held_manifest))
    except Exception as exc:  # zstandard raises ZstdError and others
        plain = f"{exc}".encode()
    if codec.sha256_hex(plain) != target:
        raise StoreError(
            codec.manifest_delta_path(
                target, codec.sha256_hex(codec.canonical_json(held_manifest))
            ),
            "delta",
            "the manifest delta does not rebuild the manifest (agents fall back to the whole one)",
            "Delete the manifest delta, or republish",
        )


def verify_release(reader: StoreReader, model: str, version: str) -> list[str]:
    """Problems with one release (empty when everything verifies)."""
    try:
        release = reader.fetch_release(model, version)
        previous = (
            reader.fetch_release(model, release.previous_version)
            if release.previous_version
            else None
        )
    except StoreError as exc:
        return [str(exc)]
    signer = reader.signers[f"{model}@{version}"]
    print(f"{model}@{version}: index signed by {signer.label()}")
    problems: list[str] = []
    for entry in release.variants:
        try:
            _check_variant(reader, release, entry.name, previous)
        except StoreError as exc:
            problems.append(f"{model}@{version}/{entry.name}: {exc}")
    return problems


def _chain(reader: StoreReader, ref: str) -> list[tuple[str, str]]:
    """MODEL@VERSION and the releases before it, following `previousVersion`."""
    model, version = _split(ref)
    found: list[tuple[str, str]] = []
    while version and (model, version) not in found:
        found.append((model, version))
        try:
            version = reader.fetch_release(model, version).previous_version
        except StoreError:
            break  # verify_release reports it
    return found


def run_verify(args: argparse.Namespace) -> int:
    transport = open_transport(args.store, ca_bundle=args.ca_bundle)
    reader = StoreReader(transport, args.public_key)
    if args.release:
        try:
            found = sorted({r for ref in args.release for r in _chain(reader, ref)})
        except StoreError as exc:
            print(f"error: {exc}")
            return 1
    elif isinstance(transport, FileTransport):
        found = releases(transport.root)
    else:
        print("error: an http(s) store cannot be listed: name releases with --release M@V")
        return 1
    problems = [p for model, version in found for p in verify_release(reader, model, version)]
    for problem in problems:
        print(problem)
    print(f"{len(found)} release(s) checked, {len(problems)} problem(s)")
    return 1 if problems else 0


def run_gc(args: argparse.Namespace) -> int:
    try:
        result = collecting.collect(args.store, time.time(), args.grace, args.dry_run)
    except StoreError as exc:
        print(f"error: {exc}")
        return 1
    verb = "would remove" if args.dry_run else "removed"
    for path in result.garbage:
        print(f"{verb} {path.relative_to(args.store)}")
    young = f"{result.kept_young} unreferenced object(s) younger than {args.grace:.0f} s"
    print(f"{verb} {len(result.garbage)} object(s), {result.bytes:,} bytes; kept {young}")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    """Sign every manifest of every release whose index this key signed; with --public-key,
    countersign the releases those keys signed first."""
    key = keys.load_private_key(args.key)
    store = DirectoryStore(args.store)
    for ref in args.index:
        model, _, version = ref.partition("@")
        try:
            if store.sign_index(model, version, key):
                print(f"signed the index of {model}@{version}")
        except StoreError as exc:
            print(f"error: {exc}")
            return 1
    if args.public_key and countersign(args, store, key) > 0:
        return 1
    reader = StoreReader(FileTransport(args.store), key.public_key())
    done = 0
    for model, version in releases(args.store):
        try:
            store.prepare_manifests(reader.fetch_release(model, version), key)
        except StoreError as exc:
            print(f"skipped {model}@{version}: {exc}")
            continue
        done += 1
    print(f"{done} release(s) signed")
    return 0


def countersign(args: argparse.Namespace, store: DirectoryStore, key: Ed25519PrivateKey) -> int:
    """Add this key's signatures to each release a --public-key signed (index, then manifests,
    each verified first by a signature of a --public-key); the number of failures. A release
    this key signed already is left as it is."""
    own = keys.Trusted(keys.key_id(key.public_key()), key.public_key())
    reader = StoreReader(FileTransport(args.store), [*args.public_key, own])
    chosen = [_split(r) for r in args.release] or releases(args.store)
    failed = 0
    for model, version in chosen:
        try:
            release = reader.fetch_release(model, version)
            for entry in release.variants:
                reader.fetch_manifest(entry.manifest_digest)
                store.sign_manifest(entry.manifest_digest, key)
            added = store.countersign_index(model, version, key)
        except StoreError as exc:
            print(f"not countersigned {model}@{version}: {exc}")
            failed += 1
            continue
        signer = reader.signers[f"{model}@{version}"].label()
        done = f"countersigned {own.key_id}" if added else f"already signed by {own.key_id}"
        print(f"{model}@{version}: signed by {signer}; {done}")
    return failed


def _split(ref: str) -> tuple[str, str]:
    model, sep, version = ref.partition("@")
    if not sep or not model or not version:
        raise StoreError(ref, "name", "not MODEL@VERSION", "Write it like detector@1.2.0")
    return model, version
