"""ed25519 keys for release signatures: generate, load (PEM or raw base64), sign, verify.

The signature of `index.json` is `index.json.sig`: base64 of the 64-byte ed25519 signature of the
exact bytes of `index.json`. No I/O beyond reading key files the caller names.
"""

from __future__ import annotations

import base64
import binascii
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


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The content of a `.sig` file for `data`."""
    return base64.b64encode(key.sign(data)) + b"\n"


def verify(key: Ed25519PublicKey, data: bytes, sig_file: bytes) -> bool:
    """True when `sig_file` (a `.sig` file's content) is a valid signature of `data` by `key`."""
    try:
        key.verify(base64.b64decode(sig_file.strip(), validate=True), data)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
