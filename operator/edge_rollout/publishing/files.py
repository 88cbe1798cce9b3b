"""Model files read in place: mapped read-only, pages handed back once read, hashed by streaming.

The publisher packs files of any size (a 2 GB external data file) without holding a copy: an
`mmap` acts as the bytes (slicing, `find`, the buffer protocol) and `drop_pages` returns what
was read to the page cache. Must not parse ONNX or write the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import cast

READ_BLOCK = 1 << 22


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[bytes]:
    """The bytes of the file at `path`, mapped read-only (slices are copies; an empty file is
    b""). Typed as bytes: callers only slice, search, measure and hash it."""
    if path.stat().st_size == 0:
        yield b""
        return
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        yield cast(bytes, mm)


def drop_pages(data: bytes) -> None:
    """Hand a mapped file's pages back to the page cache (RSS falls; the next read maps them
    again from the cache); nothing for plain bytes."""
    if isinstance(data, mmap.mmap):
        data.madvise(mmap.MADV_DONTNEED)


def sha256_hex(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def size(paths: Iterator[Path] | list[Path]) -> int:
    """Total bytes of the files."""
    return sum(p.stat().st_size for p in paths)
