"""Release resolution for the operator and the CLI: fetch and verify release indexes, cached.

A published version's index is immutable (the store refuses different content for the same
version), so successes are cached for long; failures briefly, so a fixed store is noticed soon.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_rollout.api.modeldeployment import ModelDeployment
from edge_rollout.api.release import Release
from edge_rollout.store.errors import NotFoundError, StoreError
from edge_rollout.store.reader import StoreReader

KEY_FILE_ENV = "EDGE_ROLLOUT_STORE_PUBLIC_KEY_FILE"
KEY_ENV = "EDGE_ROLLOUT_STORE_PUBLIC_KEY"
KEYS_DIR_ENV = "EDGE_ROLLOUT_STORE_TRUSTED_KEYS_DIR"
"""A directory of `<id>.pub` files, each a trusted key (the chart's store.trustedKeys)."""
SUCCESS_TTL = 3600.0
FAILURE_TTL = 10.0


class ReleaseUnavailableError(Exception):
    """The release cannot be used; `reason` is CamelCase, the message says what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


TrustedKeys = tuple[tuple[str, str], ...]
"""(id, public key) pairs, as a ModelDeployment's store gives them."""


@dataclass(frozen=True)
class ReleaseRef:
    url: str
    trusted: TrustedKeys | str
    """The deployment's trusted keys; a string is one key (id `publicKey`); empty: the
    operator's."""
    model: str
    version: str


def default_public_key() -> str:
    """The operator's trusted key: $EDGE_ROLLOUT_STORE_PUBLIC_KEY or the file it names."""
    inline = os.environ.get(KEY_ENV, "")
    if inline:
        return inline
    path = os.environ.get(KEY_FILE_ENV, "")
    return Path(path).read_text() if path and Path(path).exists() else ""


def default_trusted_keys() -> TrustedKeys:
    """The operator's trusted keys: the one key above (id `publicKey`) and every `<id>.pub` in
    $EDGE_ROLLOUT_STORE_TRUSTED_KEYS_DIR."""
    found = [("publicKey", default_public_key())]
    directory = os.environ.get(KEYS_DIR_ENV, "")
    if directory and Path(directory).is_dir():
        found += [(p.stem, p.read_text()) for p in sorted(Path(directory).glob("*.pub"))]
    return tuple((name, text) for name, text in found if text.strip())


class ReleaseCache:
    """Verified release indexes by (store, key, model, version)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[ReleaseRef, tuple[float, Release | ReleaseUnavailableError]] = {}

    def get(self, ref: ReleaseRef) -> Release:
        """The verified release, or ReleaseUnavailableError with the reason."""
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(ref)
        if cached is None or cached[0] < now:
            value = fetch_release(ref)
            ttl = SUCCESS_TTL if isinstance(value, Release) else FAILURE_TTL
            cached = (now + ttl, value)
            with self._lock:
                self._entries[ref] = cached
        if isinstance(cached[1], ReleaseUnavailableError):
            raise cached[1]
        return cached[1]


def fetch_release(ref: ReleaseRef) -> Release | ReleaseUnavailableError:
    """Fetch and verify one release index; errors are returned, not raised."""
    given = (("publicKey", ref.trusted),) if isinstance(ref.trusted, str) else ref.trusted
    trusted = tuple((n, k) for n, k in given if k.strip()) or default_trusted_keys()
    if not trusted:
        return ReleaseUnavailableError(
            "NoPublicKey",
            "no key to verify the release index: set spec.model.store.trustedKeys (or publicKey)"
            f" or give the operator trusted keys (${KEY_ENV}, ${KEY_FILE_ENV} or ${KEYS_DIR_ENV};"
            " the chart's store.trustedKeys)",
        )
    try:
        reader = StoreReader.open(ref.url, trusted, timeout=10.0)
        release = reader.fetch_release(ref.model, ref.version)
    except StoreError as error:
        return ReleaseUnavailableError(_reason(error), _with_hint(str(error), ref.url))
    return release


TLS_ON_PLAIN_HTTP = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure")
"""What OpenSSL says when an https:// client talks to a server that speaks plain HTTP."""


def _with_hint(message: str, url: str) -> str:
    """The error, with the fix when it is a known mistake in spec.model.store.url."""
    if url.startswith("https://") and any(s in message for s in TLS_ON_PLAIN_HTTP):
        plain = "http://" + url.removeprefix("https://")
        return (
            f"{url} answers plain HTTP, not TLS: set spec.model.store.url to {plain} (or serve"
            f" the store over TLS). {message}"
        )
    return message


def _reason(error: StoreError) -> str:
    if isinstance(error, NotFoundError):
        return "ReleaseNotFound"
    return {"key": "InvalidPublicKey", "fetch": "StoreUnreachable", "trust": "UntrustedKey"}.get(
        error.check, "ReleaseUnverifiable"
    )


def releases_for(md: ModelDeployment, cache: ReleaseCache) -> dict[str, Release]:
    """The target release (or ReleaseUnavailableError) and the stable one if it still loads."""
    store = md.spec.model.store
    target = md.spec.model.version
    trusted = tuple(store.trust_set())
    releases = {target: cache.get(ReleaseRef(store.url, trusted, md.spec.model.name, target))}
    stable = md.status.stable_version
    if stable and stable != target:
        ref = ReleaseRef(store.url, trusted, md.spec.model.name, stable)
        try:
            releases[stable] = cache.get(ref)
        except ReleaseUnavailableError as error:
            _refuse_untrusted_rollback(md, stable, error)
            # Otherwise nodes on the stable version simply keep the entries they have.
    return releases


def _refuse_untrusted_rollback(
    md: ModelDeployment, stable: str, error: ReleaseUnavailableError
) -> None:
    """A stable release no trusted key signed (its key was removed too early) could not be rolled
    back to: an abort would leave the nodes on the new version while saying RolledBack. Stall
    before any node is asked for the new version, saying how to go on."""
    if error.reason != "UntrustedKey" or md.spec.abort.failure_handling_policy != "Rollback":
        return
    raise ReleaseUnavailableError(
        "UntrustedKey",
        f"the stable version {stable}, which an abort rolls back to, cannot be verified: {error}."
        f" Keep the key that signed {stable} in spec.model.store.trustedKeys until the new"
        " version is stable, or countersign it with a trusted key; to roll forward with no"
        " rollback, set spec.abort.failureHandlingPolicy: Pause",
    ) from error
