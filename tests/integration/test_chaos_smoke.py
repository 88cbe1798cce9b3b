"""A short run of bench/chaos (the full run is `make bench`): the operator SIGKILLed during a
rollout, the apiserver restarted in the middle of one, an agent SIGKILLed at random points, and
every kind of store fault. Nothing may exceed maxUnavailable, activate a corrupt file or be lost.
"""

from __future__ import annotations

from pathlib import Path

from bench.chaos import run as chaos
from tests.fixtures.faulty_http import KINDS


def test_chaos_quick_run_breaks_nothing(tmp_path: Path) -> None:
    outcomes = chaos.run(chaos.QUICK, tmp_path)
    report = chaos.table(outcomes)
    assert len(outcomes) == 2 + 1 + len(KINDS) + 1, report
    for outcome in outcomes:
        assert outcome.exceeded == 0, report
        assert outcome.corrupt == 0, report
        assert outcome.lost == 0, report
        assert outcome.completed == outcome.attempted > 0, report
