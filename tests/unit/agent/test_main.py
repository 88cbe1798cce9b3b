"""`edge-rollout-agent` startup: log flags, and an unreadable kubeconfig refused in words."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_rollout.kube import logrecords
from edge_rollout_agent import __main__ as agent_main


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    logger = logging.getLogger()
    saved = logger.handlers[:], logger.level
    yield logger
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])


def test_log_flags_default_to_info_text() -> None:
    args = agent_main.parse_args(["--node", "edge-1"])
    assert (args.log_level, args.log_format) == ("INFO", "text")
    args = agent_main.parse_args(["--node", "edge-1", "--log-level=warning", "--log-format=json"])
    assert (args.log_level, args.log_format) == ("WARNING", "json")


def test_unreadable_kubeconfig_exits_2_saying_what_to_pass(
    root: logging.Logger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    code = agent_main.main(["--node", "edge-1", "--kubeconfig", str(missing),
                            "--data-dir", str(tmp_path / "data"), "--metrics-port", "0",
                            "--log-format", "json"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"edge-rollout-agent: cannot load {missing}: ")
    assert err.rstrip().endswith("pass --kubeconfig with a readable kubeconfig, or run in a Pod "
                                 "with a ServiceAccount")  # fmt: skip
    assert len(err.splitlines()) == 1
    (handler,) = root.handlers
    assert isinstance(handler.formatter, logrecords.JsonFormatter)
    assert handler.formatter.default_object == {"kind": "EdgeNode", "name": "edge-1"}
