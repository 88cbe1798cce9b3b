"""Store encodings: delta frames against a base (as `zstd --long=31 --patch-from`), frames made
before long-distance matching still read, object paths."""

from __future__ import annotations

import random

import pytest
import zstandard

from edge_rollout.store import codec

BASE = random.Random(2).randbytes(300_000)


def test_a_frame_against_a_base_is_small_and_decodes_only_with_it() -> None:
    new = BASE[:1000] + b"inserted" + BASE[1000:]
    frame = codec.compress_against(new, BASE)
    assert frame is not None
    assert len(frame) < 100
    assert codec.decompress_against(frame, BASE, len(new)) == new
    assert codec.decompress_against(frame, BASE[::-1], len(new)) != new  # digests catch this


def test_a_frame_declaring_another_size_is_refused() -> None:
    frame = codec.compress_against(b"abc" * 100, BASE)
    assert frame is not None
    with pytest.raises(ValueError, match="expected"):
        codec.decompress_against(frame, BASE, 10)


def test_matches_far_back_in_a_base_larger_than_the_level_s_window() -> None:
    """Level 3's own window is 1-2 MiB and a raw dictionary indexes its end only: swapping the
    halves of 24 MiB needs long-distance matching over the whole base."""
    base = random.Random(5).randbytes(24 << 20)
    new = base[12 << 20 :] + b"edit" + base[: 12 << 20]
    frame = codec.compress_against(new, base, level=3)
    assert frame is not None
    assert len(frame) < len(new) // 200  # 28 kB; random bytes found nowhere else cost 24 MiB
    assert codec.decompress_against(frame, base, len(new)) == new


def test_a_frame_made_before_long_distance_matching_still_decodes() -> None:
    """Store format v1 frames (python-zstandard, raw-content dictionary, window <= 128 MiB)."""
    new = BASE[5000:] + BASE[:5000]
    params = zstandard.ZstdCompressionParameters.from_level(
        19, source_size=len(new), window_log=20, write_content_size=True, write_dict_id=False
    )
    raw = zstandard.ZstdCompressionDict(BASE, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    old = zstandard.ZstdCompressor(compression_params=params, dict_data=raw).compress(new)
    assert codec.decompress_against(old, BASE, len(new)) == new


def test_the_window_covers_base_and_data_up_to_two_gib() -> None:
    assert codec.delta_window_log(1 << 20, 1 << 20) == 22
    assert codec.delta_window_log(3 << 30, 0) == codec.MAX_DELTA_WINDOW_LOG == 31


def test_an_empty_base_gives_a_plain_frame() -> None:
    frame = codec.compress_against(b"hello" * 100, b"")
    assert frame is not None
    assert codec.decompress(frame) == b"hello" * 100


def test_delta_paths_take_only_hex_digests() -> None:
    a, b = "a" * 64, "b" * 64
    assert codec.manifest_delta_path(a, b) == f"manifest-deltas/sha256/{a}/{b}"
    with pytest.raises(ValueError, match="not a sha256"):
        codec.manifest_delta_path("../x", b)
