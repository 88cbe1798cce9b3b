"""`edge-rollout keygen`: make the ed25519 key pair that signs release indexes.

Writes KEY (private, PKCS#8 PEM, mode 0600) and KEY.pub (public PEM) and prints the public key for
`spec.model.store.trustedKeys` with its key id (what signatures name it by). Refuses to overwrite
an existing key. Must not touch a store.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge_rollout.store import keys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("keygen", help="make an ed25519 key pair for signing releases")
    p.add_argument("key", type=Path, help="private key file to write; KEY.pub gets the public key")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    private: Path = args.key
    public = private.with_name(private.name + ".pub")
    for path in (private, public):
        if path.exists():
            print(f"error: {path} exists; remove it or choose another name (keys are not replaced)")
            return 1
    key = keys.generate_private_key()
    private.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(keys.private_key_pem(key))
    pem = keys.public_key_pem(key.public_key())
    public.write_text(pem)
    print(f"private key: {private} (keep it secret)\npublic key:  {public}\n\n{pem}")
    print(f"base64 form: {keys.public_key_b64(key.public_key())}")
    print(f"key id:      {keys.key_id(key.public_key())} (signatures by this key name it)")
    return 0
