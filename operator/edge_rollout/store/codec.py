"""Encoding of store objects: sha256 names, zstd compression, canonical JSON.

Every object is named by the sha256 of its plain bytes and stored zstd-compressed. Pure functions
over bytes; must not do I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import zstandard
from pydantic import BaseModel
from zstandard import backend_cffi

_zlib: Any = getattr(backend_cffi, "lib")  # noqa: B009 (not exported in its stubs)
_ffi: Any = getattr(backend_cffi, "ffi")  # noqa: B009
"""libzstd as bundled in python-zstandard (cffi): its own API has no prefix (`--patch-from`)."""
_alloc = _ffi.new_allocator(should_clear_after_alloc=False)

ZSTD_LEVEL = 19
MAX_OBJECT_BYTES = 1 << 31
"""Largest plain object a reader accepts (guards against decompression bombs)."""
MAX_DELTA_WINDOW_LOG = 31
"""Largest window a delta frame may declare (2 GiB, zstd's limit on 64-bit): base and result
beyond it are matched within the last 2 GiB only, as `zstd --long=31 --patch-from` does."""
_MIN_WINDOW_LOG = 10
_PS_DISABLE = 2
"""`ZSTD_ps_disable` of libzstd's ZSTD_paramSwitch_e."""
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


def delta_window_log(base_size: int, data_size: int) -> int:
    """log2 of the window a delta frame uses: covers base and data, capped at 2 GiB.

    >>> delta_window_log(3 << 20, 3 << 20), delta_window_log(0, 9), delta_window_log(1 << 40, 1)
    (23, 10, 31)
    """
    return min(MAX_DELTA_WINDOW_LOG, max(_MIN_WINDOW_LOG, (base_size + data_size).bit_length()))


def _check(code: int) -> int:
    if _zlib.ZSTD_isError(code):
        raise zstandard.ZstdError(_ffi.string(_zlib.ZSTD_getErrorName(code)).decode())
    return code


def _prefix_frame(data: bytes, base: bytes, level: int) -> bytes:
    """zstd's own `--patch-from` recipe through libzstd: `base` referenced as a prefix,
    long-distance matching, a window over base and data, one worker (its serial matcher indexes
    the whole prefix; a single-threaded one-shot call loses matches beyond a few MB), no block
    splitting (libzstd 1.5.7 splits blocks at level 19; on a near-copy every split block costs
    its own headers: 9.6% more than the zstd 1.5.4 CLI on a 58 MB re-export, 0.1% less without)."""
    cctx = _ffi.gc(_zlib.ZSTD_createCCtx(), _zlib.ZSTD_freeCCtx)
    settings = (
        (_zlib.ZSTD_c_compressionLevel, level),
        (_zlib.ZSTD_c_windowLog, delta_window_log(len(base), len(data))),
        (_zlib.ZSTD_c_enableLongDistanceMatching, 1),
        (_zlib.ZSTD_c_contentSizeFlag, 1),
        (_zlib.ZSTD_c_checksumFlag, 0),
        (_zlib.ZSTD_c_dictIDFlag, 0),
        (_zlib.ZSTD_c_nbWorkers, 1),
        (_zlib.ZSTD_c_blockSplitterLevel, 1),
        (_zlib.ZSTD_c_splitAfterSequences, _PS_DISABLE),
    )
    for param, value in settings:
        _check(_zlib.ZSTD_CCtx_setParameter(cctx, param, value))
    _check(_zlib.ZSTD_CCtx_setPledgedSrcSize(cctx, len(data)))
    prefix = _ffi.from_buffer(base)
    _check(_zlib.ZSTD_CCtx_refPrefix(cctx, prefix, len(base)))
    capacity = _zlib.ZSTD_compressBound(len(data))
    out = _alloc("char[]", capacity)
    size = _check(_zlib.ZSTD_compress2(cctx, out, capacity, _ffi.from_buffer(data), len(data)))
    return bytes(_ffi.buffer(out, size))


def compress_against(data: bytes, base: bytes, level: int = ZSTD_LEVEL) -> bytes | None:
    """One zstd frame of `data` that refers to `base` as raw content, as `zstd --long=31
    --patch-from` makes it (same sizes within a few bytes, at any size).

    The window covers base and data (capped at 2 GiB, `MAX_DELTA_WINDOW_LOG`); None when `data`
    is larger than a reader accepts (`MAX_OBJECT_BYTES`). An empty base gives a plain frame.
    """
    if len(data) > MAX_OBJECT_BYTES:
        return None
    if not base:
        return compress(data, level)
    return _prefix_frame(data, base, level)


def decompress_against(frame: bytes, base: bytes, expected_size: int | None = None) -> bytes:
    """The plain bytes of a `compress_against` frame, given the same base.

    Refuses a frame that declares another size than `expected_size` (or more than the cap when
    it is None), or a window larger than base and result need (`delta_window_log`): memory is
    then base, result and zstd's fixed tables, the frame is decoded in one pass into the result.
    Raises ValueError or zstandard.ZstdError.
    """
    declared = zstandard.frame_content_size(frame)
    if declared < 0 or declared > (MAX_OBJECT_BYTES if expected_size is None else expected_size):
        raise ValueError(f"frame declares {declared} bytes, more than expected")
    if expected_size is not None and declared != expected_size:
        raise ValueError(f"frame declares {declared} bytes, {expected_size} expected")
    if not base:
        return zstandard.ZstdDecompressor().decompress(frame, max_output_size=max(declared, 1))
    window = 1 << delta_window_log(len(base), declared)
    if zstandard.get_frame_parameters(frame).window_size > window:
        raise ValueError(f"frame declares a window over {window} bytes, more than base and result")
    dctx = zstandard.ZstdDecompressor(dict_data=_raw_dict(base), max_window_size=window)
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
