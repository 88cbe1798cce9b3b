"""Options every plugin command shares (kubeconfig, context, namespace, output) and printing.

kubectl passes its plugins only the arguments after the plugin name, so each command takes the
connection flags kubectl users know; $KUBECONFIG is read as kubectl reads it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console, RenderableType

from edge_rollout.cli import formatting as fmt
from edge_rollout.cli.fleetview import Cluster
from edge_rollout.kube import client as kube_client

OUTPUTS = ("table", "json", "yaml")


def cluster_options() -> argparse.ArgumentParser:
    """A parent parser with --kubeconfig, --context, -n/--namespace, --as, --as-group and
    -o/--output."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: $KUBECONFIG, a list of files merged as kubectl does, then "
        "~/.kube/config)",
    )
    parent.add_argument("--context", help="kubeconfig context to use (default: the current one)")
    parent.add_argument(
        "-n", "--namespace", help="namespace (default: the context's namespace, else default)"
    )
    parent.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="act as this user (impersonation, as kubectl --as)",
    )
    parent.add_argument(
        "--as-group",
        dest="as_groups",
        metavar="GROUP",
        action="append",
        default=[],
        help="act as this group; repeat for several (as kubectl --as-group)",
    )
    parent.add_argument(
        "-o", "--output", choices=OUTPUTS, default="table", help="table (default), json or yaml"
    )
    return parent


def connection(args: argparse.Namespace) -> kube_client.Connection:
    """The connection kubectl's flags describe."""
    return kube_client.Connection(
        args.kubeconfig,
        args.context,
        getattr(args, "as_user", None),
        getattr(args, "as_groups", ()),
    )


def cluster(args: argparse.Namespace) -> Cluster:
    return Cluster(connection=connection(args))


def namespace(args: argparse.Namespace) -> str:
    """-n, else the kubeconfig context's namespace, else `default` (as kubectl)."""
    if args.namespace:
        return str(args.namespace)
    try:
        return kube_client.context_namespace(args.kubeconfig, args.context)
    except Exception:  # no readable kubeconfig: the connection reports it properly
        return "default"


def emit(
    args: argparse.Namespace, data: Callable[[], Any], view: Callable[[], RenderableType]
) -> None:
    """Print `data()` as JSON/YAML with -o, else `view()` as tables."""
    if args.output in ("json", "yaml"):
        sys.stdout.write(fmt.encode(data(), args.output))
        return
    console().print(view())


def console() -> Console:
    """Colour on a terminal; wide plain text in a pipe (or $COLUMNS wide)."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console(highlight=False)
    return Console(width=fmt.WIDE, highlight=False)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
