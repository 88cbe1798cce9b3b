"""`edge-rollout`: the command line (operator, generate, and the store commands).

Each subcommand lives in its own module with `register(subparsers)`; this module only wires them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

SUBCOMMAND_MODULES = (
    "edge_rollout.controller.run",
    "edge_rollout.cli.publish",
    "edge_rollout.cli.keygen",
    "edge_rollout.cli.store",
    "edge_rollout.cli.diff",
    "edge_rollout.cli.dryrun",
)
"""Modules that add subcommands; each has `register(subparsers)`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-rollout",
        description="Roll ML models out to edge nodes: publish variants, run the operator.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    sys.exit(handler(args) or 0)


if __name__ == "__main__":
    main()
