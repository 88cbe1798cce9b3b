"""`edge-rollout`: the command line (operator, publish, keygen, store, diff, plan).

Each subcommand lives in its own module with `register(subparsers)`. This module only lists them and
imports the one that runs, so each command starts with only its own extra installed (the images
install one extra each); `--help` lists every command without importing any.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from edge_rollout.cli import failures

PROG = "edge-rollout"
DESCRIPTION = "Roll ML models out to edge nodes: publish variants, run the operator."
N = TypeVar("N")


@dataclass(frozen=True)
class Command:
    """A subcommand: the module whose `register(subparsers)` adds it, and the extra it needs."""

    module: str
    help: str
    extra: str


COMMANDS: dict[str, Command] = {
    "operator": Command(
        "edge_rollout.controller.run", "run the operator (Kopf) against the cluster", "operator"
    ),
    "publish": Command(
        "edge_rollout.cli.publish", "build, measure, chunk and sign a model release", "publish"
    ),
    "keygen": Command(
        "edge_rollout.cli.keygen", "make an ed25519 key pair for signing releases", "publish"
    ),
    "store": Command("edge_rollout.cli.store", "inspect or clean a store", "publish"),
    "diff": Command(
        "edge_rollout.cli.diff", "bytes to fetch vs reuse between two releases", "publish"
    ),
    "plan": Command(
        "edge_rollout.cli.dryrun",
        "dry run: which node would get which variant of a ModelDeployment file, and why",
        "operator",
    ),
}
"""Name -> where it lives; the help here is what `edge-rollout --help` lists (a test keeps it equal
to the module's own)."""


class MissingExtraError(SystemExit):
    """The chosen command's module needs a package its extra installs; the message says which."""


def chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named in `argv`: its first word that is not an option (the top level has
    only `-h`), if it is a known command."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def load(name: str) -> Any:
    """Import the module of command `name`; a missing third-party package says which extra to
    install (a missing edge_rollout module is a bug and is raised as is)."""
    command = COMMANDS[name]
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] in ("edge_rollout", "edge_rollout_agent"):
            raise
        raise MissingExtraError(
            f"{PROG} {name}: needs the Python package {error.name!r}, which the "
            f"[{command.extra}] extra installs: pip install 'edge-rollout[{command.extra}]'"
        ) from error


def wired_parser(command: str | None) -> argparse.ArgumentParser:
    """A parser where `command` (if any) is registered by its module and the others are names
    with their help only."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, entry in COMMANDS.items():
        if name == command:
            load(name).register(subparsers)
        else:
            subparsers.add_parser(name, help=entry.help)
    return parser


class CommandParser(argparse.ArgumentParser):
    """The top-level parser: prints every command's help without importing any; parsing wires
    in the module of the command being parsed, and only that one."""

    def __init__(self) -> None:
        super().__init__(prog=PROG, description=DESCRIPTION)
        self._listing = wired_parser(None)

    def format_help(self) -> str:
        return self._listing.format_help()

    def format_usage(self) -> str:
        return self._listing.format_usage()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: N | None = None
    ) -> tuple[N | argparse.Namespace, list[str]]:
        argv = list(sys.argv[1:] if args is None else args)
        return wired_parser(chosen_command(argv)).parse_known_args(argv, namespace)


def build_parser() -> argparse.ArgumentParser:
    return CommandParser()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    sys.exit(failures.run(f"{PROG} {args.command}", lambda: handler(args)))


if __name__ == "__main__":
    main()
