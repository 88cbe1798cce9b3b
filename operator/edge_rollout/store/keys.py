"""ed25519 keys for release signatures: generate, load (PEM or raw base64), sign, verify.

A `.sig` file holds one line per signature of the exact bytes it covers: `<key id> <base64 of the
64-byte ed25519 signature>`; a bare base64 line is a signature from before key ids. A key id is
the first 16 hex digits of the sha256 of the raw public key. No I/O beyond reading key files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_rollout.store.errors import StoreError


def generate_private_key() -> Ed25519PrivateKey:
    """A new random signing key."""
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (protect the file with permissions or a secret store)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PublicKey) -> str:
    """SubjectPublicKeyInfo PEM, as put in `spec.model.store.publicKey`."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key in base64 (the short form `publicKey` also accepts)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _bad_key(source: str, problem: str) -> StoreError:
    return StoreError(
        source, "key", problem, "Give the public key `edge-rollout keygen` printed (PEM or base64)"
    )


SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
"""DER SubjectPublicKeyInfo of an ed25519 key, before its 32 bytes: the body of a .pub file."""
PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
"""DER PKCS#8 of an ed25519 private key, before its 32-byte seed: the body of a private key."""
LEAKED = (
    "a private key was given where the public key belongs; in a ModelDeployment it is now stored"
    " in the cluster, readable by whoever can read that object, so treat it as leaked: make a new"
    " pair with `edge-rollout keygen`, publish (or `edge-rollout store sign`) again with it, and"
    " give the new KEY.pub"
)


def load_public_key(text: str, source: str = "public key") -> Ed25519PublicKey:
    """An ed25519 public key from PEM text, base64 of the raw 32 bytes, or base64 of the DER
    the PEM wraps (a .pub file pasted without its BEGIN and END lines)."""
    text = text.strip()
    if "PRIVATE KEY" in text[:64]:
        raise StoreError(source, "key", LEAKED, "Never put a private key in a spec")
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError as exc:
            raise _bad_key(source, f"not a PEM public key ({exc})") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise _bad_key(source, f"a {type(key).__name__}, not an ed25519 key")
        return key
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise _bad_key(source, "neither PEM nor base64") from exc
    if len(raw) == len(SPKI_PREFIX) + 32 and raw.startswith(SPKI_PREFIX):
        raw = raw[len(SPKI_PREFIX) :]
    if len(raw) == len(PKCS8_PREFIX) + 32 and raw.startswith(PKCS8_PREFIX):
        raise StoreError(source, "key", LEAKED, "Never put a private key in a spec")
    if len(raw) != 32:
        raise _bad_key(
            source,
            f"{len(raw)} bytes of base64: neither a raw ed25519 key (32 bytes) nor the body of a"
            " .pub file",
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The signing key in a PEM file written by `edge-rollout keygen`."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise StoreError(
            str(path),
            "key",
            f"cannot load the private key ({exc})",
            "Pass --key the PEM file `edge-rollout keygen` wrote",
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StoreError(
            str(path), "key", "not an ed25519 key", "Make one with edge-rollout keygen"
        )
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """The id signatures name a key by: 16 hex digits of the sha256 of its raw 32 bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Trusted:
    """A public key a verifier trusts, under the name the user gave it."""

    name: str
    key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    def label(self) -> str:
        """`name (key id)`, or the key id alone when the name is it."""
        return self.key_id if self.name == self.key_id else f"{self.name} ({self.key_id})"


def trust(named: Iterable[tuple[str, str]]) -> tuple[Trusted, ...]:
    """Trusted keys from (name, PEM or base64) pairs; an empty text is skipped. A bad key's
    error names it: `public key` (a spec's publicKey) or `trusted key 'ID'`."""
    return tuple(
        Trusted(name, load_public_key(text, _source(name))) for name, text in named if text.strip()
    )


def _source(name: str) -> str:
    return "public key" if name == "publicKey" else f"trusted key {name!r}"


def trust_one(key: Ed25519PublicKey) -> tuple[Trusted, ...]:
    """A trust set of one key, named by its key id."""
    return (Trusted(key_id(key), key),)


@dataclass(frozen=True)
class Signature:
    """One line of a `.sig` file: the key id it names ("" for a bare line, MALFORMED for a line
    that is no signature) and the base64 signature."""

    key_id: str
    value: str


MALFORMED = "?"
KEY_ID_LENGTH = 16


def _well_formed(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 64
    except (binascii.Error, ValueError):
        return False


def _is_key_id(text: str) -> bool:
    return len(text) == KEY_ID_LENGTH and all(c in "0123456789abcdef" for c in text)


def parse(sig_file: bytes) -> list[Signature]:
    """The lines of a `.sig` file, in order; a malformed line is kept as MALFORMED (never
    verifies)."""
    found = []
    for line in sig_file.decode("utf-8", "replace").splitlines():
        fields = line.split()
        if not fields:
            continue
        named = len(fields) == 2 and _is_key_id(fields[0])
        kid, value = (fields[0], fields[1]) if named else ("", fields[0])
        ok = (named or len(fields) == 1) and _well_formed(value)
        found.append(Signature(kid, value) if ok else Signature(MALFORMED, line.strip()))
    return found


def well_formed(sig_file: bytes) -> bool:
    """The file holds at least one line shaped like a signature."""
    return any(s.key_id != MALFORMED for s in parse(sig_file))


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The line of a `.sig` file that signs `data` with `key`."""
    value = base64.b64encode(key.sign(data)).decode()
    return f"{key_id(key.public_key())} {value}\n".encode()


def countersign(key: Ed25519PrivateKey, data: bytes, sig_file: bytes) -> bytes | None:
    """`sig_file` with a signature of `data` by `key` added; None when it already has one."""
    if verify(key.public_key(), data, sig_file):
        return None
    kept = sig_file if not sig_file or sig_file.endswith(b"\n") else sig_file + b"\n"
    return kept + sign(key, data)


def _valid(key: Ed25519PublicKey, data: bytes, value: str) -> bool:
    try:
        key.verify(base64.b64decode(value, validate=True), data)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def signed_by(trusted: Sequence[Trusted], data: bytes, sig_file: bytes) -> Trusted | None:
    """The first trusted key (in trust order) with a valid signature of `data` in `sig_file`."""
    signatures = parse(sig_file)
    for candidate in trusted:
        kid = candidate.key_id
        for sig in signatures:
            if sig.key_id in ("", kid) and _valid(candidate.key, data, sig.value):
                return candidate
    return None


def verify(key: Ed25519PublicKey, data: bytes, sig_file: bytes) -> bool:
    """True when `sig_file` (a `.sig` file's content) has a valid signature of `data` by `key`."""
    return signed_by(trust_one(key), data, sig_file) is not None


def named_ids(sig_file: bytes) -> list[str]:
    """The key ids the signatures of a `.sig` file name (`unnamed` for bare lines), in order;
    malformed lines are left out."""
    found = (s.key_id or UNNAMED for s in parse(sig_file) if s.key_id != MALFORMED)
    return list(dict.fromkeys(found))


UNNAMED = "unnamed"
"""How messages call a bare signature line (written before key ids)."""


def describe_untrusted(trusted: Sequence[Trusted], sig_file: bytes) -> str:
    """Which keys signed and which are trusted, for an error message."""
    ids = {t.key_id for t in trusted}
    named = named_ids(sig_file)
    notes = {UNNAMED: " (a signature from before key ids, by no trusted key)"}
    notes.update({i: " (trusted, but its signature does not verify)" for i in ids})
    found = ", ".join(f"{i}{notes.get(i, '')}" for i in named) or "none"
    wanted = ", ".join(t.label() for t in trusted) or "none"
    return f"signed by key id(s) {found}; trusted: {wanted}"
