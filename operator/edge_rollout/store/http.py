"""HTTP(S) transport for stores served by any static server (nginx, S3, a CDN).

requests with urllib3 `Retry` for connection errors and 5xx, timeouts on every request, a custom
CA bundle, and Range requests that resume a body cut off mid-way, or a 200 shorter than the
object (a store or proxy that lies about a body being complete). Moves bytes only: must not
verify or decompress.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from edge_rollout.store.errors import SHORT_READ, NotFoundError, StoreError
from edge_rollout.store.transport import check_relative

_BROKEN = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Reply:
    """How one request went: its status, the size the reply said the object has, the error
    that cut it off (None when the body ended cleanly)."""

    status: int
    declared: int | None
    error: Exception | None = None


def build_session(ca_bundle: str | None, retries: int) -> requests.Session:
    """A session that retries connects and 5xx with backoff and trusts `ca_bundle` if given."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=0.2,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if ca_bundle:
        session.verify = ca_bundle
    session.headers["User-Agent"] = "edge-rollout"
    return session


class HttpTransport:
    """A store under an http(s) base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        resumes: int = 4,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(timeout, 10.0), timeout)
        self.resumes = resumes
        self.session = session or build_session(ca_bundle, retries)

    @property
    def location(self) -> str:
        return self.base_url

    def get(self, path: str, prefix: bytes = b"", size: int | None = None) -> bytes:
        """The object's bytes; `size` is its stored size when the caller knows it (a manifest
        says): a 200 shorter than that, or than its own Content-Length, is completed with Range
        requests from where it stopped."""
        url = f"{self.base_url}/{check_relative(path)}"
        buf = bytearray(prefix)
        short = ""
        for attempt in range(self.resumes + 1):
            try:
                reply = self._get_once(url, buf)
            except _BROKEN as exc:
                reply = _Reply(0, None, exc)
            except StoreError as exc:
                if short and exc.check == "size":  # 416: the 200 was whole after all
                    return bytes(buf)  # (stored differently than the manifest says; verified next)
                raise
            expected = size if size is not None else reply.declared
            if reply.error is None and (expected is None or len(buf) >= expected):
                if short:
                    log.warning("%s: recovered", short)
                return bytes(buf)
            if reply.status == 200 and expected and not short:
                short = f"{url} returned 200 with {len(buf)} of {expected} bytes"
                short += "; retried with Range"
                log.warning("StoreShortRead: %s", short)
            if attempt == self.resumes:
                raise _gave_up(url, attempt + 1, short, reply.error or f"{len(buf)} bytes")
            time.sleep(min(0.1 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def _get_once(self, url: str, buf: bytearray) -> _Reply:
        headers = {"Range": f"bytes={len(buf)}-"} if buf else {}
        with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as resp:
            self._check_status(url, resp, len(buf))
            if resp.status_code == 200:
                buf.clear()  # the server ignored Range (or nothing was held): start over
            declared = _declared_size(resp, len(buf))
            try:
                for part in resp.iter_content(chunk_size=1 << 16):
                    buf += part
            except _BROKEN as exc:
                return _Reply(resp.status_code, declared, exc)
        return _Reply(resp.status_code, declared)

    @staticmethod
    def _check_status(url: str, resp: requests.Response, held: int) -> None:
        if resp.status_code == 404:
            raise NotFoundError(
                url, "fetch", "HTTP 404", "Check the model name and version, or publish it first"
            )
        if resp.status_code == 416 and held:
            raise StoreError(
                url,
                "size",
                f"the server has fewer than the {held} bytes already held",
                "The object changed on the server; delete the partial download and retry",
            )
        if resp.status_code not in (200, 206):
            raise StoreError(
                url,
                "fetch",
                f"HTTP {resp.status_code} {resp.reason}",
                "Check the store URL, the server and its logs",
            )
        if resp.status_code == 206 and not resp.headers.get("Content-Range", "").startswith(
            f"bytes {held}-"
        ):
            raise StoreError(
                url,
                "fetch",
                f"unexpected Content-Range {resp.headers.get('Content-Range')!r}",
                "The server or a proxy mishandles Range requests; retry without resuming",
            )


def _declared_size(resp: requests.Response, offset: int) -> int | None:
    """The whole object's size as the reply states it (Content-Length past `offset`); None when
    the body is content-encoded (Content-Length then counts the encoded bytes)."""
    length = resp.headers.get("Content-Length", "")
    encoded = resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
    return offset + int(length) if length.isdigit() and not encoded else None


def _gave_up(url: str, attempts: int, short: str, last: object) -> StoreError:
    if short:
        return StoreError(
            url,
            SHORT_READ,
            f"{short.removeprefix(url + ' ')} {attempts - 1} times; the last attempt got {last}",
            "The store or a proxy in front of it cuts bodies short: check its logs and cache",
        )
    return StoreError(
        url,
        "fetch",
        f"transfer failed {attempts} times ({last})",
        "Check the network and the store server, then retry",
    )
