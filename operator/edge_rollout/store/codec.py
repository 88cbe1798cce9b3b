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
MAX_DELTA_WINDOW_LOG = 27
"""Largest window a delta frame may need (base plus result, 128 MiB): what zstd decoders accept
by default, and a bound on the memory an agent spends applying one."""
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


def _raw_dict(base: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def compress_against(data: bytes, base: bytes, level: int = ZSTD_LEVEL) -> bytes | None:
    """One zstd frame of `data` that refers to `base` as raw content, as `zstd --patch-from` does.

    The window covers base and data, so any match in the base is found; None when that window
    would exceed `MAX_DELTA_WINDOW_LOG` (then there is no delta). An empty base gives a plain frame.
    """
    window_log = max(10, (len(base) + len(data)).bit_length())
    if window_log > MAX_DELTA_WINDOW_LOG:
        return None
    if not base:
        return compress(data, level)
    params = zstandard.ZstdCompressionParameters.from_level(
        level,
        source_size=len(data),
        window_log=window_log,
        write_content_size=True,
        write_dict_id=False,
        write_checksum=False,
    )
    return zstandard.ZstdCompressor(compression_params=params, dict_data=_raw_dict(base)).compress(
        data
    )


def decompress_against(frame: bytes, base: bytes, expected_size: int | None = None) -> bytes:
    """The plain bytes of a `compress_against` frame, given the same base.

    Refuses a frame that declares another size than `expected_size` (or more than the cap when
    it is None). Raises ValueError or zstandard.ZstdError.
    """
    declared = zstandard.frame_content_size(frame)
    if declared < 0 or declared > (MAX_OBJECT_BYTES if expected_size is None else expected_size):
        raise ValueError(f"frame declares {declared} bytes, more than expected")
    if expected_size is not None and declared != expected_size:
        raise ValueError(f"frame declares {declared} bytes, {expected_size} expected")
    if not base:
        return zstandard.ZstdDecompressor().decompress(frame, max_output_size=max(declared, 1))
    dctx = zstandard.ZstdDecompressor(
        dict_data=_raw_dict(base), max_window_size=1 << MAX_DELTA_WINDOW_LOG
    )
    return dctx.decompress(frame, max_output_size=max(declared, 1))


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


def manifest_delta_path(target: str, base: str) -> str:
    """`manifest-deltas/sha256/<target>/<base>`: the manifest `target` as a zstd frame against
    the plain bytes of manifest `base`; both must be bare hex."""
    for digest in (target, base):
        if not is_hex_digest(digest):
            raise ValueError(f"{digest!r} is not a sha256 hex digest")
    return f"manifest-deltas/sha256/{target}/{base}"


def signature_path(manifest_digest: str) -> str:
    """`manifests/sha256/<hex>.sig`: the detached signature of a manifest's plain bytes."""
    return object_path("manifests", manifest_digest) + ".sig"
