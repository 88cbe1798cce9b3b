"""Store encodings: delta frames against a base (as `zstd --patch-from`), object paths."""

from __future__ import annotations

import random

import pytest

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


def test_no_delta_when_the_window_would_exceed_the_limit(monkeypatch) -> None:
    monkeypatch.setattr(codec, "MAX_DELTA_WINDOW_LOG", 18)
    assert codec.compress_against(BASE, BASE) is None


def test_an_empty_base_gives_a_plain_frame() -> None:
    frame = codec.compress_against(b"hello" * 100, b"")
    assert frame is not None
    assert codec.decompress(frame) == b"hello" * 100


def test_delta_paths_take_only_hex_digests() -> None:
    a, b = "a" * 64, "b" * 64
    assert codec.manifest_delta_path(a, b) == f"manifest-deltas/sha256/{a}/{b}"
    with pytest.raises(ValueError, match="not a sha256"):
        codec.manifest_delta_path("../x", b)
