"""`edge-rollout operator` / `edge-rollout-operator`: run the Kopf operator against a kubeconfig.

Uses the current kubeconfig (or in-cluster config). `--standalone` skips peering (tests, one
replica); in a Deployment, peering keeps a standby paused. Logs go to stderr, one line per record
(`--log-level`, `--log-format text|json`), starting with `operator running: ...` once it watches.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

import prometheus_client

from edge_rollout.controller import logformat
from edge_rollout.kube import logrecords

log = logging.getLogger(__name__)


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
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve Prometheus metrics here (0: off)"
    )
    parser.add_argument("--metrics-address", default="0.0.0.0", help="address for metrics")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=logrecords.LEVELS,
        default="INFO",
        help="least severe records to log (default INFO; DEBUG adds tracebacks and HTTP requests)",
    )
    parser.add_argument(
        "--log-format",
        choices=logrecords.FORMATS,
        default="text",
        help="text: one line per record; json: one JSON object per line (default text)",
    )


def run(args: argparse.Namespace) -> int:
    """Run until interrupted."""
    import kopf

    import edge_rollout.controller.handlers  # noqa: F401  (registers the handlers)

    logformat.configure(args.log_level, args.log_format)
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=args.metrics_address)
    ready = threading.Event()
    announce = threading.Thread(target=_announce, args=(ready, args), daemon=True)
    announce.start()
    kopf.run(
        standalone=args.standalone,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness or None,
        priority=args.priority,
        ready_flag=ready,
    )
    return 0


def _announce(ready: threading.Event, args: argparse.Namespace) -> None:
    """Log once Kopf has run its startup handlers and starts watching."""
    ready.wait()
    where = ", ".join(args.namespace) if args.namespace else "all namespaces"
    peering = "standalone" if args.standalone else f"peering priority {args.priority}"
    log.info("operator running: watching ModelDeployments in %s (%s)", where, peering)


def main() -> None:
    parser = argparse.ArgumentParser(prog="edge-rollout-operator", description=__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
