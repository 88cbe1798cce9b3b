"""`edge-rollout operator` / `edge-rollout-operator`: run the Kopf operator against a kubeconfig.

Uses the current kubeconfig (or in-cluster config). `--standalone` skips peering (tests, one
replica); in a Deployment, peering keeps a standby paused.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add `edge-rollout operator`."""
    parser = subparsers.add_parser("operator", help="run the operator (Kopf) against the cluster")
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only these namespaces (repeatable); default: all",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: do not coordinate with other operator replicas",
    )
    parser.add_argument(
        "--liveness", default="", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--priority", type=int, default=0, help="peering priority; give standbys distinct values"
    )


def run(args: argparse.Namespace) -> int:
    """Run until interrupted."""
    import kopf

    import edge_rollout.controller.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        standalone=args.standalone,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        priority=args.priority,
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="edge-rollout-operator", description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
