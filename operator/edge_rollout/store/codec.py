"""Encoding of store objects: sha256 names, zstd compression, canonical JSON.

Every object is named by the sha256 of its plain bytes and stored zstd-compressed. Pure functions
over bytes; must not do I/O.
"""

from __future__ import annotations

import hashlib
import json
import re

import zstandard
from pydantic import BaseModel

ZSTD_LEVEL = 19
MAX_OBJECT_BYTES = 1 << 31
"""Largest plain object a reader accepts (guards against decompression bombs)."""
_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes | memoryview) -> str:
    """Lower-case hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def is_hex_digest(name: str) -> bool:
    """True for exactly 64 lower-case hex digits: the only names used to build object paths."""
    return bool(_HEX.fullmatch(name))


def compress(data: bytes, level: int = ZSTD_LEVEL) -> bytes:
    """zstd frame with the content size in its header."""
    return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)


def decompress(stored: bytes, expected_size: int | None = None) -> bytes:
    """Plain bytes of a zstd frame; refuses frames larger than `expected_size` (or the cap)."""
    limit = MAX_OBJECT_BYTES if expected_size is None else expected_size
    declared = zstandard.frame_content_size(stored)
    if declared > limit:
        raise ValueError(f"frame declares {declared} bytes, more than the {limit} expected")
    return zstandard.ZstdDecompressor().decompress(stored, max_output_size=max(limit, 1))


def canonical_json(model: BaseModel) -> bytes:
    """Deterministic JSON of an API model: camelCase keys, sorted, no spaces, defaults omitted."""
    data = model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if "format" in type(model).model_fields:
        data["format"] = model.model_dump(mode="json", include={"format"})["format"]
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def object_path(kind: str, digest: str) -> str:
    """`chunks/sha256/<hex>` or `manifests/sha256/<hex>`; `digest` must be bare hex."""
    if not is_hex_digest(digest):
        raise ValueError(f"{digest!r} is not a sha256 hex digest")
    return f"{kind}/sha256/{digest}"
