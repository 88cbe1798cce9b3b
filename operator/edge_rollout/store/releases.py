"""Release resolution for the operator and the CLI: fetch and verify release indexes, cached.

A published version's index is immutable (the store refuses different content for the same
version), so successes are cached for long; failures briefly, so a fixed store is noticed soon.
"""

from __future__ import annotations

import contextlib
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
SUCCESS_TTL = 3600.0
FAILURE_TTL = 10.0


class ReleaseUnavailableError(Exception):
    """The release cannot be used; `reason` is CamelCase, the message says what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ReleaseRef:
    url: str
    public_key: str
    model: str
    version: str


def default_public_key() -> str:
    """The operator's trusted key: $EDGE_ROLLOUT_STORE_PUBLIC_KEY or the file it names."""
    inline = os.environ.get(KEY_ENV, "")
    if inline:
        return inline
    path = os.environ.get(KEY_FILE_ENV, "")
    return Path(path).read_text() if path and Path(path).exists() else ""


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
    key = ref.public_key or default_public_key()
    if not key:
        return ReleaseUnavailableError(
            "NoPublicKey",
            "no key to verify the release index: set spec.model.store.publicKey or give the "
            f"operator a trusted key (${KEY_ENV} or ${KEY_FILE_ENV})",
        )
    try:
        release = StoreReader.open(ref.url, key, timeout=10.0).fetch_release(ref.model, ref.version)
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
    return {"key": "InvalidPublicKey", "fetch": "StoreUnreachable"}.get(
        error.check, "ReleaseUnverifiable"
    )


def releases_for(md: ModelDeployment, cache: ReleaseCache) -> dict[str, Release]:
    """The target release (or ReleaseUnavailableError) and the stable one if it still loads."""
    store = md.spec.model.store
    target = md.spec.model.version
    releases = {
        target: cache.get(ReleaseRef(store.url, store.public_key, md.spec.model.name, target))
    }
    stable = md.status.stable_version
    if stable and stable != target:
        ref = ReleaseRef(store.url, store.public_key, md.spec.model.name, stable)
        # Without it, nodes on the stable version simply keep the entries they have.
        with contextlib.suppress(ReleaseUnavailableError):
            releases[stable] = cache.get(ref)
    return releases
