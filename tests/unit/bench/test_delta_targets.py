"""Issue 12's delta targets as `bench/delta/targets.py` marks them, one kind at a time."""

from __future__ import annotations

from bench.delta import targets

TOOLS = {"zstd -19": 900, "zstd --patch-from": 100, "bsdiff+zstd": 80, "xdelta3 -9": 120}


def _wire(ours: int) -> dict[str, int]:
    return {**TOOLS, targets.OURS: ours}


def test_fine_tunes_must_beat_every_tool() -> None:
    assert targets.target("head", "m", _wire(79), 1000)[1] is True
    assert targets.target("partial", "m", _wire(80), 1000)[1] is False


def test_drift_is_a_share_of_the_file_and_not_for_int8_models() -> None:
    assert targets.target("drift", "m", _wire(550), 1000)[1] is True
    assert targets.target("drift", "m", _wire(551), 1000)[1] is False
    assert targets.target("drift", "t5-encoder-int8", _wire(999), 1000)[1] is None


def test_int8_reexport_and_released_pairs_against_their_yardstick() -> None:
    assert targets.target("int8", "m", _wire(80), 1000)[1] is True
    assert targets.target("reexport", "m", _wire(111), 1000)[1] is False
    assert targets.target("real", "m", _wire(873), 1000)[1] is True
    assert targets.target("real", "m", _wire(874), 1000)[1] is False


def test_the_table_counts_met_targets_and_lists_skipped_rows() -> None:
    rows: list[dict[str, object]] = [
        {"model": "m", "kind": "head", "size": 1000, "wire": _wire(50), "publish_s": 1.0,
         "rss_mib": 100},
        {"model": "m", "kind": "reexport", "size": 1000, "wire": _wire(500), "publish_s": 1.0,
         "rss_mib": 100},
        {"model": "x", "kind": "head", "skipped": "no wheel"},
    ]  # fmt: skip
    text = targets.table(rows, list(TOOLS))
    assert "Targets met: 1 of 2." in text
    assert "| m | reexport | 1,000 | 500 (50.0%) |" in text
    assert "Skipped: x head: no wheel" in text
