"""The seam between store readers and where the bytes live: one small `Transport` Protocol.

`FileTransport` serves a directory (`file:///...`); `edge_rollout.store.http.HttpTransport` serves
http(s). An OCI-registry backend would be one more class here. Transports move bytes only: they
must not verify, decompress or parse (that is `edge_rollout.store.reader`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from edge_rollout.store.errors import NotFoundError, StoreError


class Transport(Protocol):
    """Gets one stored object by its path relative to the store root."""

    @property
    def location(self) -> str:
        """The store root, for messages (a URL or a directory)."""
        ...

    def get(self, path: str, prefix: bytes = b"", size: int | None = None) -> bytes:
        """The object's stored bytes. `prefix` is a part already held: only the rest is fetched.
        `size` is the stored size when the caller knows it: a shorter answer is completed.

        Raises `NotFoundError` when absent and `StoreError` (check `fetch`) when unreachable.
        """
        ...


def check_relative(path: str) -> str:
    """`path` if it is a plain relative store path; refuses `..`, absolute paths and backslashes."""
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise StoreError(
            path,
            "name",
            "a path-like object name (absolute, empty part, '.' or '..')",
            "The manifest or index is malformed or hostile; do not use this store",
        )
    return path


class FileTransport:
    """A store in a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return self.root.as_uri() if self.root.is_absolute() else str(self.root)

    def get(self, path: str, prefix: bytes = b"", size: int | None = None) -> bytes:
        target = self.root / check_relative(path)
        try:
            return target.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"{self.location}/{path}",
                "fetch",
                "no such file",
                "Check the model name and version, or publish it first",
            ) from exc
        except OSError as exc:
            raise StoreError(
                f"{self.location}/{path}",
                "fetch",
                f"cannot read ({exc.strerror})",
                "Check the store directory and its permissions",
            ) from exc


def open_transport(url: str, *, ca_bundle: str | None = None, timeout: float = 30.0) -> Transport:
    """The transport for a store URL: `file:///abs/path`, `http://...`, `https://...` or a path."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        from edge_rollout.store.http import HttpTransport  # requests only when needed

        return HttpTransport(url, ca_bundle=ca_bundle, timeout=timeout)
    if parsed.scheme == "file":
        return FileTransport(Path(unquote(parsed.path)))
    if parsed.scheme == "":
        return FileTransport(Path(url))
    raise StoreError(
        url,
        "url",
        f"unsupported scheme {parsed.scheme!r}",
        "Use file:///absolute/path, http:// or https://",
    )
