"""The one store reader for operator and agent: fetches and verifies index, manifests and chunks.

Every value it returns has been checked: the index against its detached ed25519 signatures (one
by a trusted key will do), a manifest against the digest the signed index gives (and its own
signatures when the reader has trusted keys), a chunk against the digest (and size) the manifest
gives. Failures raise `StoreError` naming the file, the check and what to do. Must not write
anything or trust any name it has not validated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import pydantic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge_rollout.api import manifest as manifest_api
from edge_rollout.api.manifest import ChunkRef, GoldenVectors, Manifest
from edge_rollout.api.release import Release, VariantEntry
from edge_rollout.store import codec, keys
from edge_rollout.store.errors import NotFoundError, StoreError, VerificationError
from edge_rollout.store.transport import Transport, open_transport

M = TypeVar("M", bound=pydantic.BaseModel)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def index_path(model: str, version: str) -> str:
    """`models/<model>/<version>/index.json`, refusing names that could leave the store."""
    for what, value in (("model", model), ("version", version)):
        if not NAME_PATTERN.fullmatch(value):
            raise VerificationError(
                value,
                "name",
                f"{what} name {value!r} is not a plain name",
                f"Use letters, digits, '.', '_', '+' and '-' for the {what}",
            )
    return f"models/{model}/{version}/index.json"


def check_identity(release: Release, model: str, version: str, where: str) -> None:
    """Refuse an index stored under `model@version` that says it is another release."""
    if release.model != model or release.version != version:
        raise VerificationError(
            where,
            "identity",
            f"the index is for {release.model}@{release.version}",
            "The index was copied to the wrong place; republish this version",
        )


def _hex(digest: str, where: str) -> str:
    hex_part = digest.removeprefix("sha256:")
    if not codec.is_hex_digest(hex_part):
        raise VerificationError(
            where,
            "name",
            f"{digest[:80]!r} is not a sha256 digest (path-like or malformed name)",
            "The store content is malformed or hostile; do not use this store",
        )
    return hex_part


TrustInput = Ed25519PublicKey | Sequence[keys.Trusted] | None
"""What a reader trusts: one key, a set of named keys, or nothing."""

TRUST_FIX = (
    "Add the key that signed it to spec.model.store.trustedKeys (with its own id), or give it"
    " with --public-key (store verify, publish), or countersign the release with a trusted key:"
    " `edge-rollout store sign STORE --key TRUSTED.key --public-key SIGNER.pub --release {ref}`"
    ' (docs/operations.md, "Rotating the signing key")'
)


def _trust_set(trusted: TrustInput) -> tuple[keys.Trusted, ...]:
    if trusted is None:
        return ()
    if isinstance(trusted, Ed25519PublicKey):
        return keys.trust_one(trusted)
    return tuple(trusted)


class StoreReader:
    """Verified access to one store, trusting a set of public keys (any one signature by a
    trusted key makes a file valid, so a store can carry releases signed by an old and a new key).

    Without keys (`None` or empty) it cannot read release indexes, and it takes manifests on the
    strength of the digest the caller got from a verified index (an agent given `manifestDigest`
    by the operator); with some, every manifest must carry a signature by one of them too.
    """

    def __init__(self, transport: Transport, trusted: TrustInput) -> None:
        self.transport = transport
        self.trusted = _trust_set(trusted)
        self.signers: dict[str, keys.Trusted] = {}
        """`model@version` -> the trusted key whose signature of its index verified."""

    @classmethod
    def open(
        cls,
        url: str,
        public_key: str | Sequence[tuple[str, str]],
        *,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
    ) -> StoreReader:
        """A reader for a store URL and the trusted keys of a ModelDeployment: one public key
        (PEM or base64; empty: none) or (id, key) pairs."""
        if url.rstrip("/").endswith(("/index.json", "/index.json.sig")):
            raise StoreError(
                url,
                "url",
                "this is a file in a store (a release index), not the store",
                "Give the store's base URL; models/<model>/<version>/index.json is added to it",
            )
        transport = open_transport(url, ca_bundle=ca_bundle, timeout=timeout)
        named = [("publicKey", public_key)] if isinstance(public_key, str) else public_key
        return cls(transport, keys.trust(named))

    def _where(self, path: str) -> str:
        return f"{self.transport.location}/{path}"

    def fetch_release(self, model: str, version: str) -> Release:
        """The signed release index of `model` at `version`."""
        path = index_path(model, version)
        if not self.trusted:
            raise VerificationError(
                self._where(path),
                "key",
                "no public key to verify the release index with",
                "Set spec.model.store.trustedKeys or publicKey (the key `edge-rollout keygen`"
                " printed)",
            )
        data = self.transport.get(path)
        sig = self._index_signature(model, version, path)
        signer = keys.signed_by(self.trusted, data, sig)
        if signer is None:
            raise self._untrusted(path, sig, f"{model}@{version}")
        release = self._parse(Release, data, path)
        check_identity(release, model, version, self._where(path))
        self.signers[f"{model}@{version}"] = signer
        return release

    def _untrusted(self, path: str, sig: bytes, ref: str) -> VerificationError:
        """A signature file with no valid signature by a trusted key: which keys it names,
        which are trusted, and the fix."""
        if not keys.well_formed(sig):
            return VerificationError(
                self._where(path),
                "signature",
                "index.json.sig holds no signature (no line is `<key id> <base64 of 64 bytes>`)",
                "Copy index.json.sig from the store you published to, or republish",
            )
        named = set(keys.named_ids(sig))
        if named & {t.key_id for t in self.trusted}:
            return VerificationError(
                self._where(path),
                "signature",
                "index.json.sig is not a valid ed25519 signature of index.json:"
                f" {keys.describe_untrusted(self.trusted, sig)}",
                "The signed file or its signature was altered: republish under a new version",
            )
        return VerificationError(
            self._where(path),
            "trust",
            "index.json has no signature by a trusted key:"
            f" {keys.describe_untrusted(self.trusted, sig)}",
            TRUST_FIX.format(ref=ref),
        )

    def _index_signature(self, model: str, version: str, path: str) -> bytes:
        """`index.json.sig`; a missing one is a signature failure, not a missing release."""
        try:
            return self.transport.get(path + ".sig")
        except NotFoundError as exc:
            raise VerificationError(
                self._where(path + ".sig"),
                "signature",
                "the index has no detached signature (index.json.sig is missing)",
                "Copy index.json.sig from the store you published to (a sync may have skipped"
                " it), or, if you trust this index.json, sign it: `edge-rollout store sign STORE"
                f" --key KEY --index {model}@{version}`",
            ) from exc

    def fetch_manifest(self, digest: str, held: Manifest | None = None) -> Manifest:
        """The manifest whose plain JSON has sha256 `digest` (`sha256:<hex>` or bare hex).

        With `held` (a manifest the caller has, normally the same variant of the previous
        release), it first tries the much smaller manifest delta against it, and falls back to
        the whole manifest when there is none or it does not rebuild exactly `digest`.
        """
        hex_digest = _hex(digest, "manifest digest")
        path = codec.object_path("manifests", hex_digest)
        plain = self._manifest_from_delta(hex_digest, held) if held is not None else None
        if plain is None:
            plain = self._fetch_verified(path, hex_digest, None)
        self._check_manifest_signature(hex_digest, plain)
        manifest = self._parse(Manifest, plain, path)
        for ref in manifest.blobs():  # pydantic checked the pattern; check again before use
            _hex(ref.digest, self._where(path))
        return manifest

    def fetch_manifest_delta(self, digest: str, held: Manifest) -> bytes:
        """The stored manifest delta that turns `held` into manifest `digest` (unverified bytes:
        `fetch_manifest` checks what it rebuilds). `NotFoundError` when there is none."""
        base = codec.canonical_json(held)
        path = codec.manifest_delta_path(_hex(digest, "manifest digest"), codec.sha256_hex(base))
        return self.transport.get(path)

    def _manifest_from_delta(self, hex_digest: str, held: Manifest) -> bytes | None:
        base = codec.canonical_json(held)
        if codec.sha256_hex(base) == hex_digest:
            return base
        try:
            frame = self.fetch_manifest_delta(hex_digest, held)
            plain = codec.decompress_against(frame, base)
        except Exception:  # no delta, unreachable, or a bad frame: the full manifest will do
            return None
        return plain if codec.sha256_hex(plain) == hex_digest else None

    def _check_manifest_signature(self, hex_digest: str, plain: bytes) -> None:
        if not self.trusted:
            return
        path = codec.signature_path(hex_digest)
        try:
            sig = self.transport.get(path)
        except NotFoundError as exc:
            raise VerificationError(
                self._where(path),
                "signature",
                "the manifest has no detached signature",
                "Releases published before manifests were signed lack it: run `edge-rollout store"
                " sign STORE --key KEY` on the store",
            ) from exc
        if keys.signed_by(self.trusted, plain, sig) is None:
            raise VerificationError(
                self._where(path),
                "signature",
                "not a valid ed25519 signature of the manifest by a trusted key:"
                f" {keys.describe_untrusted(self.trusted, sig)}",
                "If its release was signed with a new key, add that key to"
                " spec.model.store.trustedKeys or countersign the release (`edge-rollout store"
                " sign STORE --key TRUSTED.key --public-key SIGNER.pub`); else the manifest or its"
                " signature was altered: republish",
            )

    def fetch_variant(self, release: Release, variant: str) -> tuple[VariantEntry, Manifest]:
        """A variant's index entry and its verified manifest."""
        entry = release.variant(variant)
        if entry is None:
            names = ", ".join(v.name for v in release.variants)
            raise StoreError(
                index_path(release.model, release.version),
                "variant",
                f"no variant {variant!r} (has {names})",
                "Pick one of the listed variants",
            )
        return entry, self.fetch_manifest(entry.manifest_digest)

    def fetch_chunk(self, ref: ChunkRef, prefix: bytes = b"") -> bytes:
        """The plain bytes of a chunk (or delta residual, or golden blob), verified.

        `prefix` is a partly downloaded stored object: only the rest is requested (HTTP Range).
        """
        hex_digest = _hex(ref.digest, "chunk digest")
        path = codec.object_path("chunks", hex_digest)
        return self._fetch_verified(path, hex_digest, ref.size, prefix, ref.stored)

    def fetch_golden(self, manifest: Manifest) -> GoldenVectors | None:
        """The smoke-test vectors of a variant, if it has any (either blob layout)."""
        if manifest.golden is None:
            return None
        blobs = {r.digest: self.fetch_chunk(r) for r in manifest.golden.blobs()}
        try:
            return manifest_api.load_golden(manifest.golden, blobs)
        except ValueError as exc:
            first = manifest.golden.blobs()[0]
            raise VerificationError(
                self._where(codec.object_path("chunks", first.digest)),
                "schema",
                f"invalid golden vectors: {str(exc).splitlines()[0]}",
                "The blob is malformed or from a newer format; upgrade or republish",
            ) from exc

    def _fetch_verified(
        self,
        path: str,
        hex_digest: str,
        size: int | None,
        prefix: bytes = b"",
        stored_size: int | None = None,
    ) -> bytes:
        stored = self.transport.get(path, prefix, stored_size or None)
        try:
            plain = codec.decompress(stored, size)
        except Exception as exc:  # zstandard raises ZstdError and others for bad frames
            raise VerificationError(
                self._where(path),
                "decompress",
                f"not a complete zstd frame ({exc})",
                "The object is truncated or corrupt: delete it from any cache and fetch again",
            ) from exc
        if size is not None and len(plain) != size:
            raise VerificationError(
                self._where(path),
                "size",
                f"{len(plain)} bytes, the manifest says {size}",
                "The object is truncated or corrupt: fetch again or republish",
            )
        if codec.sha256_hex(plain) != hex_digest:
            raise VerificationError(
                self._where(path),
                "digest",
                "sha256 of the content does not match its name",
                "The object was altered or corrupted: fetch again or republish",
            )
        return plain

    def _parse(self, model: type[M], data: bytes, path: str) -> M:
        try:
            return model.model_validate_json(data)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise VerificationError(
                self._where(path),
                "schema",
                f"invalid {model.__name__}: {where}: {first['msg']}",
                "The file is malformed or from a newer format; upgrade or republish",
            ) from exc


ChunkSource = Callable[[ChunkRef], bytes]
"""Where assembly takes a chunk's plain bytes from (the reader, or a local cache)."""
