"""`edge-rollout publish` run in a caller's process (the publisher is a library) leaves the
caller's logging as it found it: onnxruntime's quantizer is quieted only while variants build."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_rollout.cli.main import build_parser
from tests.integration import store_fixtures

small_model = store_fixtures.small_model


@pytest.fixture
def root_at_info() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.INFO)
    yield root
    root.setLevel(saved)


def test_publishing_leaves_the_root_logger_level_as_it_was(
    small_model: Path, tmp_path: Path, root_at_info: logging.Logger
) -> None:
    parse = build_parser().parse_args
    key = tmp_path / "release.key"
    keygen = parse(["keygen", str(key)])
    assert keygen.handler(keygen) == 0
    args = parse(["publish", str(small_model), "--name", "mlp", "--version", "1.0.0", "--store",
                  str(tmp_path / "store"), "--key", str(key), "--runs", "2"])  # fmt: skip
    assert args.handler(args) in (0, None)
    assert root_at_info.level == logging.INFO
    assert logging.getLogger("edge_rollout.store.http").isEnabledFor(logging.WARNING)
