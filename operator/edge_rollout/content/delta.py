"""Lossless per-tensor deltas: residuals of raw values against the same tensor of a base release.

Pure: bytes in, bytes out. `residuals` computes the candidate residuals (integer difference with
zigzag, or XOR, of the raw values seen as unsigned integers, bytes regrouped into planes by
significance; or, for sparse changes, the positions of the changed values (as a bitmap, or as the
runs of unchanged values between them) followed by their zigzag differences in planes);
`apply_delta` inverts one. Compression and the choice happen in the
publisher; callers verify the result's digest. Must not compress, hash-check or do I/O.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

Encoding = Literal["sub-zigzag-planes", "xor-planes", "sparse-sub-planes", "sparse-run-planes"]
ENCODINGS: tuple[Encoding, ...] = (
    "sub-zigzag-planes",
    "xor-planes",
    "sparse-sub-planes",
    "sparse-run-planes",
)
_RUN_ESCAPE = 255
"""A run of `k * 255 + r` unchanged values is `k` bytes of 255, then `r` (0-254)."""
_COUNT_BYTES = 8
RUNS_UP_TO = 0.25
"""`sparse-run-planes` is tried only on tensors with at most this share of values changed: above
it the bitmap or a dense form is smaller, and its position arrays cost memory per change."""
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_INT = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}
UArray = npt.NDArray[np.unsignedinteger]
"""Raw values seen as little-endian unsigned integers of the item size."""


class DeltaError(ValueError):
    """A delta cannot be made or applied (sizes differ, unknown encoding)."""


def _check(base_len: int, data_len: int, item_size: int) -> None:
    if item_size not in _UINT:
        raise DeltaError(f"item size {item_size} is not 1, 2, 4 or 8")
    if base_len != data_len or data_len % item_size:
        raise DeltaError(
            f"base has {base_len} bytes, target {data_len}: sizes must match and be a multiple"
            f" of the item size {item_size}"
        )


def _values(data: bytes, item_size: int) -> UArray:
    return np.frombuffer(data, dtype=np.dtype(_UINT[item_size]).newbyteorder("<"))


def _to_planes(values: UArray, item_size: int) -> bytes:
    raw = values.astype(values.dtype.newbyteorder("<"), copy=False).view(np.uint8)
    return raw.reshape(-1, item_size).T.tobytes()


def _from_planes(planes: bytes, item_size: int) -> UArray:
    raw = np.frombuffer(planes, dtype=np.uint8).reshape(item_size, -1).T.copy()
    return raw.view(np.dtype(_UINT[item_size]).newbyteorder("<")).reshape(-1)


def _scalar(value: int, like: UArray) -> UArray:
    return np.full(1, value, dtype=like.dtype)


def _zigzag(d: UArray, item_size: int) -> UArray:
    sign: UArray = (d.view(_INT[item_size]) >> (8 * item_size - 1)).view(_UINT[item_size])
    shifted: UArray = np.left_shift(d, _scalar(1, d))
    return shifted ^ sign


def _unzigzag(z: UArray, item_size: int) -> UArray:
    one = _scalar(1, z)
    half: UArray = np.right_shift(z, one)
    return half ^ (_scalar(0, z) - (z & one))


def _sparse(a: UArray, b: UArray, item_size: int) -> bytes:
    changed = a != b
    bitmap = np.packbits(changed.astype(np.uint8), bitorder="little").tobytes()
    return bitmap + _to_planes(_zigzag(b[changed] - a[changed], item_size), item_size)


def _unsparse(a: UArray, res: bytes, item_size: int) -> UArray:
    head = (a.size + 7) // 8
    bits = np.frombuffer(res[:head], dtype=np.uint8)
    changed = np.unpackbits(bits, count=a.size, bitorder="little").astype(bool)
    if len(bits) != head or len(res) - head != int(changed.sum()) * item_size:
        raise DeltaError("sparse residual does not match its bitmap")
    out = a.copy()
    out[changed] = a[changed] + _unzigzag(_from_planes(res[head:], item_size), item_size)
    return out


def _runs(a: UArray, b: UArray, item_size: int) -> bytes:
    changed = np.flatnonzero(a != b)
    if a.size < 2**31:  # positions in 4 bytes: half the memory per change
        changed = changed.astype(np.int32)
    gaps = np.diff(changed, prepend=-1) - 1  # unchanged values before each changed one
    lengths = gaps // _RUN_ESCAPE + 1
    runs = np.full(int(lengths.sum()), _RUN_ESCAPE, dtype=np.uint8)
    runs[np.cumsum(lengths) - 1] = gaps % _RUN_ESCAPE
    header = b"".join(int(v).to_bytes(_COUNT_BYTES, "little") for v in (changed.size, runs.size))
    planes = _to_planes(_zigzag(b[changed] - a[changed], item_size), item_size)
    return header + runs.tobytes() + planes


def _unrun(a: UArray, res: bytes, item_size: int) -> UArray:
    if len(res) < 2 * _COUNT_BYTES:
        raise DeltaError("run-length residual is shorter than its header")
    count = int.from_bytes(res[:_COUNT_BYTES], "little")
    size = int.from_bytes(res[_COUNT_BYTES : 2 * _COUNT_BYTES], "little")
    if size > len(res) - 2 * _COUNT_BYTES:
        raise DeltaError("run-length residual is shorter than its header says")
    runs = np.frombuffer(res, dtype=np.uint8, count=size, offset=2 * _COUNT_BYTES)
    ends = np.flatnonzero(runs != _RUN_ESCAPE)
    planes = res[2 * _COUNT_BYTES + size :]
    whole = ends.size == 0 or ends[-1] == size - 1
    if ends.size != count or not whole or len(planes) != count * item_size:
        raise DeltaError("run-length residual does not match its header")
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.intp)
    gaps = np.add.reduceat(runs, starts, dtype=np.int64) if count else np.zeros(0, np.int64)
    changed = np.cumsum(gaps + 1) - 1
    if count and changed[-1] >= a.size:
        raise DeltaError("run-length residual points past the end of the tensor")
    out = a.copy()
    out[changed] = a[changed] + _unzigzag(_from_planes(planes, item_size), item_size)
    return out


def residual(base: bytes, data: bytes, item_size: int, encoding: Encoding) -> bytes:
    """The residual of `data` against `base` in one encoding (same length as the inputs, except
    the sparse ones: where the changed values are, then only those values).

    >>> residual(bytes([1, 2]), bytes([2, 0]), 1, "sub-zigzag-planes")
    b'\\x02\\x03'
    """
    _check(len(base), len(data), item_size)
    a, b = _values(base, item_size), _values(data, item_size)
    if encoding == "xor-planes":
        return _to_planes(a ^ b, item_size)
    if encoding == "sub-zigzag-planes":
        return _to_planes(_zigzag(b - a, item_size), item_size)
    if encoding == "sparse-sub-planes":
        return _sparse(a, b, item_size)
    if encoding == "sparse-run-planes":
        return _runs(a, b, item_size)
    raise DeltaError(f"unknown delta encoding {encoding!r}")


def candidates(base: bytes, data: bytes, item_size: int) -> tuple[Encoding, ...]:
    """The encodings worth trying for `data` against `base`: every one, but `sparse-run-planes`
    only when at most RUNS_UP_TO of the values changed."""
    _check(len(base), len(data), item_size)
    a, b = _values(base, item_size), _values(data, item_size)
    sparse = np.count_nonzero(a != b) <= RUNS_UP_TO * a.size
    return ENCODINGS if sparse else tuple(e for e in ENCODINGS if e != "sparse-run-planes")


def residuals(base: bytes, data: bytes, item_size: int) -> dict[Encoding, bytes]:
    """Every candidate residual, by encoding; the caller keeps the one that compresses best."""
    return {enc: residual(base, data, item_size, enc) for enc in ENCODINGS}


def apply_delta(base: bytes, res: bytes, item_size: int, encoding: Encoding) -> bytes:
    """Rebuild the target bytes from `base` and a residual.

    >>> apply_delta(bytes([1, 2]), b'\\x02\\x03', 1, "sub-zigzag-planes")
    b'\\x02\\x00'
    """
    if encoding in ("sparse-sub-planes", "sparse-run-planes"):
        _check(len(base), len(base), item_size)
        unpack = _unsparse if encoding == "sparse-sub-planes" else _unrun
        out = unpack(_values(base, item_size), res, item_size)
        return out.astype(out.dtype.newbyteorder("<"), copy=False).tobytes()
    _check(len(base), len(res), item_size)
    a, r = _values(base, item_size), _from_planes(res, item_size)
    if encoding == "xor-planes":
        out = a ^ r
    elif encoding == "sub-zigzag-planes":
        out = a + _unzigzag(r, item_size)
    else:
        raise DeltaError(f"unknown delta encoding {encoding!r}")
    return out.astype(out.dtype.newbyteorder("<"), copy=False).tobytes()


def item_size_of(dtype: str) -> int:
    """Bytes per value of a numpy dtype name (`float32` -> 4); 1 for anything unknown."""
    try:
        size = np.dtype(dtype).itemsize
    except TypeError:
        return 1
    return size if size in _UINT else 1
