"""Small, fast runs of every benchmark in bench/ (the full runs are `make bench`, not tests).

Each one checks that the benchmark still runs end to end and that the properties its figures
rest on hold at small scale: the memoized planner decides as the naive one does, the operator
writes each changed EdgeNode once, and so on.
"""

from __future__ import annotations

from pathlib import Path

from bench.operator_scale import run as operator_scale
from bench.planner import run as planner


def test_planner_bench_runs_and_replans_cheaper_when_nothing_changed() -> None:
    result = planner.measure(300, 12)
    assert result.selected > 0
    assert result.steady.cpu < result.cold.cpu
    assert "|" in planner.table([result])


def test_operator_scale_bench_writes_each_entry_once(tmp_path: Path) -> None:
    settings = operator_scale.Settings(
        delay=0.5, replan_seconds=1.0, idle_seconds=2.0, raw_sample=100
    )
    (row,) = operator_scale.run([150], settings, tmp_path)
    assert row.written_seconds is not None, row.note
    assert row.ready_seconds is not None, row.note
    # One server-side apply per node: the change handler and the 1 s timer never both write.
    assert row.writes_per_node == 1.0
    assert row.removed_seconds is not None
    assert row.raw_rate > 0
    assert row.peak_rss_mib > 0
