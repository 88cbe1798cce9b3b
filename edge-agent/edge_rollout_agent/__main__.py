"""`edge-rollout-agent`: parse flags, wire the agent to the cluster, the store and the local port.

Startup only: builds the API client (kubeconfig or in-cluster), the store readers, the metrics
endpoint and the loop, and stops cleanly on SIGTERM/SIGINT. Must not hold agent logic.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

from edge_rollout.api.common import parse_duration
from edge_rollout.api.edgenode import DesiredModel
from edge_rollout.api.modeldeployment import trust_pairs
from edge_rollout.kube import logrecords
from edge_rollout.store import keys
from edge_rollout.store.reader import StoreReader
from edge_rollout.store.transport import open_transport
from edge_rollout_agent import hardware, kube, loop, policy
from edge_rollout_agent.fetching import ChunkSource
from edge_rollout_agent.metrics import Endpoint, Metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="edge-rollout-agent",
        description="Pull, verify, test and serve the ML models the operator assigns this node.",
    )
    parser.add_argument("--node", required=True, help="node name (the EdgeNode is named after it)")
    parser.add_argument("--kubeconfig", help="kubeconfig file; in a pod, in-cluster config")
    parser.add_argument("--data-dir", type=Path, default=Path("/var/lib/edge-rollout"),
                        help="where models are kept (default /var/lib/edge-rollout)")  # fmt: skip
    parser.add_argument("--hardware-profile", type=Path,
                        help="YAML that overrides or extends discovered hardware")  # fmt: skip
    parser.add_argument("--metrics-port", type=int, default=9464,
                        help="local port for /metrics, /healthz and /defer (0 = off)")  # fmt: skip
    parser.add_argument("--metrics-address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="seconds between reports")
    parser.add_argument("--max-temperature", type=float, default=85.0,
                        help="hold back downloads and loading above this SoC °C")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=4, help="parallel chunk downloads")
    parser.add_argument("--store-timeout", type=float, default=30.0,
                        help="seconds without data before a store request is retried")  # fmt: skip
    parser.add_argument("--verify-interval", type=_duration, default=timedelta(hours=6),
                        help="how often kept model files are hashed again in full; a size and "
                        "mtime check runs every heartbeat (default 6h)")  # fmt: skip
    parser.add_argument("--log-level", type=str.upper, choices=logrecords.LEVELS, default="INFO",
                        help="least severe records to log (default INFO)")  # fmt: skip
    parser.add_argument("--log-format", choices=logrecords.FORMATS, default="text",
                        help="text: a line per record; json: a JSON object per line")  # fmt: skip
    return parser.parse_args(argv)


def _duration(text: str) -> timedelta:
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def source_opener(timeout: float = 30.0) -> Callable[[DesiredModel], ChunkSource]:
    """A cached store reader per (store URL, trusted keys)."""
    cache: dict[tuple[str, tuple[tuple[str, str], ...]], StoreReader] = {}

    def open_source(entry: DesiredModel) -> ChunkSource:
        trusted = tuple(trust_pairs(entry.public_key, entry.trusted_keys))
        key = (entry.store_url, trusted)
        if key not in cache:
            # The spec's manifestDigest comes from the index the operator verified; without
            # keys the reader still checks every manifest and chunk against its digest, with some
            # it also checks that a manifest signature is by one of them (old or new key).
            transport = open_transport(entry.store_url, timeout=timeout)
            cache[key] = StoreReader(transport, keys.trust(trusted))
        return cache[key]

    return open_source


CLOCK_OFFSET = "EDGE_ROLLOUT_AGENT_TEST_CLOCK_OFFSET_SECONDS"
"""Test seam, inert unless set: the agent's wall clock (the times it reports, update windows)
runs this many seconds off, as on a node whose clock is wrong (tests/integration/
test_clock_skew.py). Heartbeats and backoff are scheduled on time.monotonic either way."""


def wall_clock() -> Callable[[], datetime]:
    offset = timedelta(seconds=float(os.environ.get(CLOCK_OFFSET) or 0))
    if not offset:
        return loop.utcnow
    return lambda: loop.utcnow() + offset


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logrecords.configure(args.log_level, args.log_format, {"kind": "EdgeNode", "name": args.node})
    if args.hardware_profile:
        try:
            hardware.load_profile(args.hardware_profile)
        except hardware.ProfileError as exc:
            print(f"edge-rollout-agent: {exc}", file=sys.stderr)
            return 2
    settings = loop.Settings(node=args.node, data_dir=args.data_dir, profile=args.hardware_profile,
                             heartbeat=args.heartbeat, concurrency=args.concurrency,
                             verify_interval=args.verify_interval,
                             limits=policy.Limits(max_celsius=args.max_temperature))  # fmt: skip
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        api = kube.EdgeNodeApi(kube.load_config(args.kubeconfig), args.node)
    except (OSError, kube.config.ConfigException) as exc:
        where = args.kubeconfig or "the in-cluster or default kubeconfig"
        print(f"edge-rollout-agent: cannot load {where}: {exc}; pass --kubeconfig with a readable "
              "kubeconfig, or run in a Pod with a ServiceAccount", file=sys.stderr)  # fmt: skip
        return 2
    metrics = Metrics()
    agent = loop.Agent(settings, api, source_opener(args.store_timeout), metrics,
                       clock=wall_clock(), ticks=time.monotonic)  # fmt: skip
    stop = threading.Event()
    endpoint = _start_endpoint(args, metrics, agent, stop)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        agent.wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.run(stop)
    if endpoint:
        endpoint.stop()
    return 0


def _start_endpoint(
    args: argparse.Namespace, metrics: Metrics, agent: loop.Agent, stop: threading.Event
) -> Endpoint | None:
    if not args.metrics_port:
        return None

    def on_defer(until: datetime | None) -> None:
        agent.deferred_until = until
        agent.wake.set()

    endpoint = Endpoint(metrics, lambda: not stop.is_set(), on_defer, args.metrics_address,
                        args.metrics_port)  # fmt: skip
    endpoint.start()
    return endpoint


if __name__ == "__main__":
    sys.exit(main())
