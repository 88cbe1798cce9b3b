"""The operator's log setup: flags, levels, and the replan timer's success line kept for DEBUG."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import pytest

from edge_rollout.controller import logformat, run
from edge_rollout.kube import logrecords


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, restored afterwards (configure replaces its handlers)."""
    logger = logging.getLogger()
    saved = logger.handlers[:], logger.level
    quiet = {name: logging.getLogger(name).level for name in logformat.QUIET_LOGGERS}
    yield logger
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_log_flags_default_to_info_text_and_take_any_case() -> None:
    assert (parse().log_level, parse().log_format) == ("INFO", "text")
    args = parse("--log-level", "debug", "--log-format", "json")
    assert (args.log_level, args.log_format) == ("DEBUG", "json")


@pytest.mark.parametrize("argv", [["--log-level", "TRACE"], ["--log-format", "yaml"]])
def test_unknown_log_flags_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


def kopf_record(message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, (), None)


@pytest.mark.parametrize(
    ("message", "at_info", "at_debug"),
    [
        pytest.param("Timer 'modeldeployment_replan' succeeded.", False, True, id="timer-ok"),
        pytest.param("Handler 'modeldeployment_changed' succeeded.", True, True, id="handler"),
        pytest.param(
            "Timer 'modeldeployment_replan' failed with an exception.",
            True,
            True,
            id="timer-failed",
        ),
    ],
)
def test_only_the_timer_success_is_held_back_below_debug(
    message: str, at_info: bool, at_debug: bool
) -> None:
    assert logformat.TimerSuccessFilter(debug=False).filter(kopf_record(message)) is at_info
    assert logformat.TimerSuccessFilter(debug=True).filter(kopf_record(message)) is at_debug


def test_a_held_back_timer_line_reads_as_debug() -> None:
    made = kopf_record("Timer 'modeldeployment_replan' succeeded.")
    logformat.TimerSuccessFilter(debug=True).filter(made)
    assert (made.levelno, made.levelname) == (logging.DEBUG, "DEBUG")


@pytest.mark.parametrize(("level", "libraries"), [("INFO", logging.WARNING), ("DEBUG", 10)])
def test_configure_sets_the_level_and_quiets_libraries_unless_debug(
    root: logging.Logger, level: str, libraries: int
) -> None:
    handler = logformat.configure(level, "json")
    assert root.level == logging.getLevelName(level)
    assert isinstance(handler.formatter, logrecords.JsonFormatter)
    assert any(isinstance(f, logformat.TimerSuccessFilter) for f in handler.filters)
    assert {logging.getLogger(n).level for n in logformat.QUIET_LOGGERS} == {libraries}
